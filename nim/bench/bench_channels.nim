## Channel benchmark: nimsync against Nim's own ``system.Channel``, from Nim.
##
## Every run uses two threads made with ``createThread`` — a producer and a
## consumer, or a client and an echo thread — and measures:
##
## * **ints** — throughput of ``int`` messages through channels of capacity
##   1024: nimsync SPSC and MPMC through the wrapper (`sendBlocking` /
##   `recvBlocking`); an SPSC nimsync channel driven through the raw C ABI
##   (``nimsync_channel_send`` / ``nimsync_channel_recv`` on the handle), which
##   isolates what the Nim wrapper costs; and ``system.Channel[int]``, bounded
##   (``open(maxItems = 1024)``) and unbounded (``open()``).
## * **strings** — throughput of ``$i`` strings: nimsync SPSC (moves each
##   string) against the bounded ``system.Channel[string]`` (deep-copies it).
## * **pingpong** — round-trip latency, one message in flight over two
##   channels: the median and 99th percentile in ns, nimsync SPSC against the
##   bounded ``system.Channel[int]``.
##
## Each case is first run once as a warm-up (with a tenth of the messages),
## then 3 rounds, interleaved between implementations; the median round is
## reported. Every run checks that the consumer received exactly what the
## producer sent, in order (a digest of every message), and the program quits
## with an error if not.
##
## Progress goes to stderr; results go to stdout as one JSON object a line::
##
##   {"suite":"nim","metric":"throughput","case":"ints","impl":"nimsync spsc","mps":41.2,"threads":2,"cores":2}
##   {"suite":"nim","metric":"pingpong","case":"pingpong","impl":"system Channel","median_ns":5123,"p99_ns":9001,"cores":2}
##
## Impl names: ``nimsync spsc``, ``nimsync mpmc``, ``nimsync C ABI (raw)``,
## ``system Channel``, ``system Channel unbounded``.
##
## Run it from ``nim/`` once ``cargo build --release -p nimsync-ffi`` has made
## ``target/release/libnimsync.so`` (``bench/config.nims`` links it)::
##
##   nim c -d:release --outdir:../build/nim bench/bench_channels.nim
##   NIMSYNC_BENCH_SCALE=0.05 ../build/nim/bench_channels
##
## ``NIMSYNC_BENCH_SCALE`` (a float, default 1.0) multiplies the counts:
## 10,000,000 ints, 1,000,000 strings and 100,000 ping-pong rounds.

import std/[algorithm, cpuinfo, hashes, json, monotimes, os, strutils, times]
import nimsync
import nimsync/private/abi

const
  Capacity = 1024
  Rounds = 3
  IntMessages = 10_000_000
  StringMessages = 1_000_000
  PingPongRounds = 100_000

type
  BenchError = object of CatchableError
    ## A run delivered wrong data.

# Pipes: one channel implementation each, used through `put` and `take`.

type
  NimsyncPipe[T] = object
    ch: nimsync.Channel[T]
  RawPipe = object
    ## An SPSC nimsync channel of ints, used through the C ABI only.
    handle: ptr ChannelHandle
  SystemPipe[T] = object
    ch: ptr system.Channel[T]

proc `=destroy`(p: var RawPipe) =
  if p.handle != nil:
    nimsync_channel_free(p.handle)

proc `=copy`(dest: var RawPipe, src: RawPipe) {.error.}

proc `=destroy`[T](p: var SystemPipe[T]) =
  if p.ch != nil:
    p.ch[].close()
    deallocShared(p.ch)

proc `=copy`[T](dest: var SystemPipe[T], src: SystemPipe[T]) {.error.}

proc nimsyncPipe[T](mode: ChannelMode): NimsyncPipe[T] =
  NimsyncPipe[T](ch: newChannel[T](Capacity, mode))

proc rawPipe(): RawPipe =
  let st = nimsync_channel_new(csize_t(Capacity), ModeSpsc, nil, nil, addr result.handle)
  doAssert st == StatusOk, $nimsync_status_str(st)

proc systemPipe[T](maxItems: int): SystemPipe[T] =
  ## A system channel holding at most `maxItems` (0: unbounded).
  result.ch = cast[ptr system.Channel[T]](allocShared0(sizeof(system.Channel[T])))
  result.ch[].open(maxItems)

proc put[T](p: NimsyncPipe[T], value: sink T) {.inline.} = p.ch.sendBlocking(value)
proc take[T](p: NimsyncPipe[T]): T {.inline.} = p.ch.recvBlocking()

proc put(p: RawPipe, value: int) {.inline.} =
  let st = nimsync_channel_send(p.handle, cast[uint](value))
  doAssert st == StatusOk, $nimsync_status_str(st)

proc take(p: RawPipe): int {.inline.} =
  var item: uint
  let st = nimsync_channel_recv(p.handle, addr item)
  doAssert st == StatusOk, $nimsync_status_str(st)
  cast[int](item)

proc put[T](p: SystemPipe[T], value: sink T) {.inline.} = p.ch[].send(value)
proc take[T](p: SystemPipe[T]): T {.inline.} = p.ch[].recv()

template itemOf(p: typed): typedesc =
  ## The type a pipe carries.
  typeof(p.take())

# Throughput: a producer sends `count` messages, a consumer digests them.

proc payload[T](i: int): T {.inline.} =
  when T is int: i
  else: $i

proc digest[T](count: int): Hash =
  ## The digest of the messages a producer sends, in order.
  for i in 0 ..< count:
    result = result !& hash(payload[T](i))

type
  Transfer[P] = object
    pipe: P
    count: int
    received: Hash ## the consumer's digest of what it received

proc produce[P](t: ptr Transfer[P]) {.thread.} =
  for i in 0 ..< t.count:
    t.pipe.put(payload[itemOf(t.pipe)](i))

proc consume[P](t: ptr Transfer[P]) {.thread.} =
  var h: Hash = 0
  for _ in 0 ..< t.count:
    h = h !& hash(t.pipe.take())
  t.received = h

proc throughput[P](pipe: sink P, count: int): float =
  ## Million messages per second moved through `pipe`.
  var t = Transfer[P](pipe: pipe, count: count)
  var producer, consumer: Thread[ptr Transfer[P]]
  let start = getMonoTime()
  createThread(consumer, consume[P], addr t)
  createThread(producer, produce[P], addr t)
  joinThreads(producer, consumer)
  let elapsed = getMonoTime() - start
  if t.received != digest[itemOf(t.pipe)](count):
    raise newException(BenchError, "the consumer did not receive what was sent")
  float(count) / float(elapsed.inNanoseconds) * 1000.0

# Ping-pong: a client sends one message and waits for the echo.

type
  Latency = object
    median, p99: int64 ## ns
  Rally[P] = object
    ping, pong: P
    count: int
    times: seq[int64] ## ns per round trip, filled in by the client
    ok: bool

proc client[P](r: ptr Rally[P]) {.thread.} =
  r.ok = true
  for i in 0 ..< r.count:
    let start = getMonoTime()
    r.ping.put(i)
    let back = r.pong.take()
    r.times[i] = inNanoseconds(getMonoTime() - start)
    r.ok = r.ok and back == i

proc echoer[P](r: ptr Rally[P]) {.thread.} =
  for _ in 0 ..< r.count:
    r.pong.put(r.ping.take())

proc pingpong[P](ping, pong: sink P, count: int): Latency =
  ## Round-trip times of `count` rounds over `ping` and `pong`.
  var r = Rally[P](ping: ping, pong: pong, count: count, times: newSeq[int64](count))
  var a, b: Thread[ptr Rally[P]]
  createThread(b, echoer[P], addr r)
  createThread(a, client[P], addr r)
  joinThreads(a, b)
  if not r.ok:
    raise newException(BenchError, "an echo came back different")
  r.times.sort()
  Latency(median: r.times[count div 2], p99: r.times[min(count - 1, count * 99 div 100)])

# The runner: warm-up, interleaved rounds, medians, JSON lines.

type
  Bench[R] = object
    impl: string
    run: proc (count: int): R {.nimcall.}

proc bench[R](impl: string, run: proc (count: int): R {.nimcall.}): Bench[R] =
  Bench[R](impl: impl, run: run)

proc progress(msg: string) =
  stderr.write("\r  " & alignLeft(msg, 50))
  stderr.flushFile()

proc middle[T](xs: seq[T]): T =
  sorted(xs)[xs.len div 2]

proc middle(xs: seq[Latency]): Latency =
  var medians, p99s: seq[int64]
  for x in xs:
    medians.add x.median
    p99s.add x.p99
  Latency(median: middle(medians), p99: middle(p99s))

proc measure[R](caseName: string, count: int, benches: openArray[Bench[R]]): seq[R] =
  ## Each bench's median over `Rounds` interleaved runs, after a warm-up.
  var runs = newSeq[seq[R]](benches.len)
  for round in 0 .. Rounds:
    for i, b in benches:
      let label = if round == 0: "warm-up" else: "round " & $round & "/" & $Rounds
      progress(label & ": " & caseName & " " & b.impl)
      try:
        let r = b.run(if round == 0: max(1, count div 10) else: count)
        if round > 0:
          runs[i].add r
      except BenchError as e:
        stderr.write("\n")
        quit("bench_channels: " & caseName & ", " & b.impl & ": " & e.msg, QuitFailure)
  for r in runs:
    result.add middle(r)

let cores = countProcessors()

proc emit(line: JsonNode) =
  stdout.writeLine($line)
  stdout.flushFile()

proc runThroughput(caseName: string, count: int, benches: openArray[Bench[float]]) =
  let mps = measure(caseName, count, benches)
  for i, b in benches:
    emit %*{"suite": "nim", "metric": "throughput", "case": caseName, "impl": b.impl,
            "mps": parseFloat(formatFloat(mps[i], ffDecimal, 3)), "threads": 2, "cores": cores}

proc runLatency(caseName: string, count: int, benches: openArray[Bench[Latency]]) =
  let lat = measure(caseName, count, benches)
  for i, b in benches:
    emit %*{"suite": "nim", "metric": "pingpong", "case": caseName, "impl": b.impl,
            "median_ns": lat[i].median, "p99_ns": lat[i].p99, "cores": cores}

proc benchScale(): float =
  let raw = getEnv("NIMSYNC_BENCH_SCALE", "1.0")
  try:
    result = parseFloat(raw)
  except ValueError:
    quit("bench_channels: NIMSYNC_BENCH_SCALE must be a number, got " & raw, QuitFailure)
  if result <= 0:
    quit("bench_channels: NIMSYNC_BENCH_SCALE must be positive, got " & raw, QuitFailure)

proc scaled(count: int, scale: float): int =
  max(1, int(float(count) * scale))

proc main() =
  let scale = benchScale()
  runThroughput("ints", scaled(IntMessages, scale), [
    bench("nimsync spsc", proc (n: int): float = throughput(nimsyncPipe[int](SPSC), n)),
    bench("nimsync mpmc", proc (n: int): float = throughput(nimsyncPipe[int](MPMC), n)),
    bench("nimsync C ABI (raw)", proc (n: int): float = throughput(rawPipe(), n)),
    bench("system Channel", proc (n: int): float = throughput(systemPipe[int](Capacity), n)),
    bench("system Channel unbounded", proc (n: int): float = throughput(systemPipe[int](0), n))])
  runThroughput("strings", scaled(StringMessages, scale), [
    bench("nimsync spsc", proc (n: int): float = throughput(nimsyncPipe[string](SPSC), n)),
    bench("system Channel", proc (n: int): float = throughput(systemPipe[string](Capacity), n))])
  runLatency("pingpong", scaled(PingPongRounds, scale), [
    bench("nimsync spsc", proc (n: int): Latency =
      pingpong(nimsyncPipe[int](SPSC), nimsyncPipe[int](SPSC), n)),
    bench("system Channel", proc (n: int): Latency =
      pingpong(systemPipe[int](Capacity), systemPipe[int](Capacity), n))])
  stderr.write("\r" & spaces(54) & "\r")

main()
