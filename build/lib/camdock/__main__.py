from camdock.cli import main

raise SystemExit(main())
