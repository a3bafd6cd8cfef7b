from workloads.doctor.doctor import main

raise SystemExit(main())
