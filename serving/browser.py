"""The served pages in a real browser: headless Chromium through chromedriver (selenium), for tests and benchmarks.

Flags: no sandbox (root in CI), and no background networking, sync or component updates, which a machine
without internet answers with a burst of refused connections at every start.
"""

from __future__ import annotations

import shutil
from pathlib import Path

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1100",
)


def headless_chromium(profile_dir: str | Path):
    """(selenium driver, "") for Debian's chromium and chromedriver with a fresh profile, or (None, what is missing)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None, "selenium is not installed (pip install selenium)"
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        return None, "headless Chromium missing: apt-get install -y chromium chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver_path), options=options), ""
