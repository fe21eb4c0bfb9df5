# Lets `nim c bench/bench_channels.nim` find the package and libnimsync from a fresh
# checkout: the sources in ../src, the library built by `cargo build --release
# -p nimsync-ffi` (or `make build-rust`) in ../../target/release.
import std/os
let root = thisDir() / ".." / ".."
switch("path", thisDir() / ".." / "src")
switch("passL", "-L" & root / "target" / "release")
switch("passL", "-Wl,-rpath," & root / "target" / "release")
switch("mm", "orc")
switch("threads", "on")
