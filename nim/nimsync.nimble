# Package

version       = "0.3.0"
author        = "nimsync contributors"
description   = "Lock-free channels that block without polling, on the nimsync runtime (C ABI)"
license       = "MIT"
srcDir        = "src"

# Dependencies

requires "nim >= 1.6.10"

# The package links libnimsync (build it with `make install` in the repository
# root, or install it system-wide). Tests: `nimble test`.
task test, "Run the unit tests":
  for t in ["tests/test_errors.nim", "tests/test_channels.nim", "tests/test_async.nim", "tests/test_select.nim",
            "tests/test_scheduler.nim", "tests/test_groups.nim"]:
    exec "nim c -r --mm:orc --threads:on " & t
