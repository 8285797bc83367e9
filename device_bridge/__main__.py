"""``python -m device_bridge --config bridge.toml``: the device bridge (see device_bridge.client)."""

from device_bridge.client import main

raise SystemExit(main())
