from custan.cli import main

raise SystemExit(main())
