"""The Tune dashboard: every Tune experiment under the run storage, live in the browser, served by Ray Serve at /tune.

`experiments` reads Tune's experiment folders (no Ray needed); `app` is the Serve application around it.
"""
