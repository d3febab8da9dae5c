"""``python -m examples.demo [--quick] [--out DIR]`` from the repository root."""

from examples.demo.run import main

raise SystemExit(main())
