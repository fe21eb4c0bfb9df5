//! Channel throughput and ping-pong latency: nimsync beside its peers, in one
//! run, so that the numbers are comparable as ratios on a noisy machine.
//!
//! Throughput: `N` u64 messages through a channel of capacity 1024, SPSC
//! (1→1), MPSC (2→1), MPMC (2→2). Latency: one message bouncing between two
//! threads over two channels, median and p99 of the round trip. Every case
//! runs `ROUNDS` times, interleaved with the others; the median counts.
//!
//! Prints one JSON object per result on stdout, progress on stderr. Run with
//! `cargo bench -p nimsync-core --bench channels` (part of `make bench`);
//! `NIMSYNC_BENCH_MESSAGES` and `NIMSYNC_BENCH_ROUNDS` shrink it for a quick look.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const CAPACITY: usize = 1024;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs `producers` threads calling `send(i)` for their share of `n`
/// messages and `consumers` threads calling `recv()` until they got theirs;
/// returns messages per second.
fn throughput<S, R>(n: u64, producers: u64, consumers: u64, make: impl Fn() -> (S, R)) -> f64
where
    S: FnMut(u64) + Send + 'static,
    R: FnMut() -> u64 + Send + 'static,
{
    let start = Arc::new(Barrier::new((producers + consumers + 1) as usize));
    let mut handles = Vec::new();
    let mut sends = Vec::new();
    let mut recvs = Vec::new();
    for _ in 0..producers.max(consumers) {
        let (s, r) = make();
        sends.push(s);
        recvs.push(r);
    }
    for (p, mut send) in sends.into_iter().take(producers as usize).enumerate() {
        let start = start.clone();
        let count = n / producers + if (p as u64) < n % producers { 1 } else { 0 };
        handles.push(thread::spawn(move || {
            start.wait();
            let t0 = Instant::now();
            for i in 0..count {
                send(i);
            }
            (t0, Instant::now(), 0u64)
        }));
    }
    for (c, mut recv) in recvs.into_iter().take(consumers as usize).enumerate() {
        let start = start.clone();
        let count = n / consumers + if (c as u64) < n % consumers { 1 } else { 0 };
        handles.push(thread::spawn(move || {
            start.wait();
            let t0 = Instant::now();
            let mut sum = 0u64;
            for _ in 0..count {
                sum = sum.wrapping_add(recv());
            }
            (t0, Instant::now(), sum)
        }));
    }
    start.wait();
    // Time from the first thread's start to the last thread's end, measured by
    // the threads themselves: with every core busy, this thread may not run
    // again until they are done.
    let spans: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let first = spans.iter().map(|s| s.0).min().unwrap();
    let last = spans.iter().map(|s| s.1).max().unwrap();
    std::hint::black_box(spans.iter().fold(0u64, |a, s| a.wrapping_add(s.2)));
    n as f64 / (last - first).as_secs_f64()
}

/// Round-trip times of one message bouncing between two threads.
fn ping_pong<A, B>(rounds: usize, make: impl FnOnce() -> (A, B)) -> Vec<Duration>
where
    A: FnMut(u64) -> u64,
    B: FnMut(u64) -> u64 + Send + 'static,
{
    let (mut ping, mut pong) = make();
    let echo = thread::spawn(move || {
        for _ in 0..rounds {
            let v = pong(0);
            std::hint::black_box(v);
        }
    });
    let mut times = Vec::with_capacity(rounds);
    for i in 0..rounds as u64 {
        let t0 = Instant::now();
        let v = ping(i);
        times.push(t0.elapsed());
        std::hint::black_box(v);
    }
    echo.join().unwrap();
    times
}

type Pair = (Box<dyn FnMut(u64) + Send>, Box<dyn FnMut() -> u64 + Send>);
type Maker = Box<dyn Fn() -> Box<dyn Fn() -> Pair>>;

/// A channel implementation under test: a name and, per shape, a factory of
/// endpoint pairs sharing one channel (None when the shape is not supported).
struct Impl {
    name: &'static str,
    shapes: Vec<(&'static str, Option<Maker>)>,
}

fn shared<S, R>(make: impl Fn() -> (S, R) + 'static) -> Maker
where
    S: FnMut(u64) + Send + Clone + 'static,
    R: FnMut() -> u64 + Send + Clone + 'static,
{
    Box::new(move || {
        let (s, r) = make();
        Box::new(move || (Box::new(s.clone()) as Box<dyn FnMut(u64) + Send>, Box::new(r.clone()) as _))
    })
}

fn nimsync_unified(mode: nimsync_core::Mode) -> Maker {
    shared(move || {
        let ch = nimsync_core::Channel::new(CAPACITY, mode).unwrap();
        let tx = ch.clone();
        (move |v| tx.send(v).unwrap(), move || ch.recv().unwrap())
    })
}

fn impls_for_warmup() -> Vec<Impl> {
    impls()
}

fn impls() -> Vec<Impl> {
    use nimsync_core::Mode;
    let std_mpsc: Maker = Box::new(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<u64>(CAPACITY);
        let rx = Arc::new(std::sync::Mutex::new(Some(rx)));
        Box::new(move || {
            let tx = tx.clone();
            let rx = rx.clone();
            let mut mine = None;
            (
                Box::new(move |v| tx.send(v).unwrap()) as Box<dyn FnMut(u64) + Send>,
                Box::new(move || {
                    if mine.is_none() {
                        mine = rx.lock().unwrap().take();
                    }
                    mine.as_ref().expect("one receiver").recv().unwrap()
                }) as _,
            )
        })
    });
    let tokio_mpsc: Maker = Box::new(|| {
        let rt = Arc::new(tokio::runtime::Builder::new_current_thread().build().unwrap());
        let (tx, rx) = tokio::sync::mpsc::channel::<u64>(CAPACITY);
        let rx = Arc::new(std::sync::Mutex::new(Some(rx)));
        Box::new(move || {
            let tx = tx.clone();
            let rx = rx.clone();
            let (rt1, rt2) = (rt.clone(), rt.clone());
            let mut mine = None;
            (
                // Each endpoint drives its own await on its thread; blocking_*
                // would hide the async path.
                Box::new(move |v| {
                    let _ = &rt1;
                    futures_block_on(tx.send(v)).unwrap()
                }) as Box<dyn FnMut(u64) + Send>,
                Box::new(move || {
                    let _ = &rt2;
                    if mine.is_none() {
                        mine = rx.lock().unwrap().take();
                    }
                    futures_block_on(mine.as_mut().expect("one receiver").recv()).unwrap()
                }) as _,
            )
        })
    });
    let nimsync_async: Maker = shared(|| {
        let ch = nimsync_core::Channel::new(CAPACITY, Mode::Mpmc).unwrap();
        let tx = ch.clone();
        (move |v| futures_block_on(tx.send_async(v)).unwrap(), move || futures_block_on(ch.recv_async()).unwrap())
    });
    let split: Maker = Box::new(|| {
        let (tx, rx) = nimsync_core::spsc::channel::<u64>(CAPACITY).unwrap();
        let cell = Arc::new(std::sync::Mutex::new(Some((tx, rx))));
        Box::new(move || {
            let (tx, rx) = cell.lock().unwrap().take().expect("one pair");
            (
                Box::new(move |v| tx.send(v).unwrap()) as Box<dyn FnMut(u64) + Send>,
                Box::new(move || rx.recv().unwrap()) as _,
            )
        })
    });
    let rtrb: Maker = Box::new(|| {
        let (tx, rx) = rtrb::RingBuffer::<u64>::new(CAPACITY);
        let cell = Arc::new(std::sync::Mutex::new(Some((tx, rx))));
        Box::new(move || {
            let (mut tx, mut rx) = cell.lock().unwrap().take().expect("one pair");
            (
                Box::new(move |v| {
                    while tx.push(v).is_err() {
                        std::hint::spin_loop();
                    }
                }) as Box<dyn FnMut(u64) + Send>,
                Box::new(move || loop {
                    if let Ok(v) = rx.pop() {
                        return v;
                    }
                    std::hint::spin_loop();
                }) as _,
            )
        })
    });
    vec![
        Impl {
            name: "nimsync",
            shapes: vec![
                ("spsc", Some(nimsync_unified(Mode::Spsc))),
                ("mpsc", Some(nimsync_unified(Mode::Mpsc))),
                ("mpmc", Some(nimsync_unified(Mode::Mpmc))),
            ],
        },
        Impl { name: "nimsync spsc::channel", shapes: vec![("spsc", Some(split)), ("mpsc", None), ("mpmc", None)] },
        Impl { name: "nimsync async", shapes: vec![("spsc", None), ("mpsc", None), ("mpmc", Some(nimsync_async))] },
        Impl {
            name: "crossbeam-channel",
            shapes: ["spsc", "mpsc", "mpmc"]
                .into_iter()
                .map(|s| {
                    (
                        s,
                        Some(shared(|| {
                            let (tx, rx) = crossbeam_channel::bounded::<u64>(CAPACITY);
                            (move |v| tx.send(v).unwrap(), move || rx.recv().unwrap())
                        })),
                    )
                })
                .collect(),
        },
        Impl {
            name: "flume",
            shapes: ["spsc", "mpsc", "mpmc"]
                .into_iter()
                .map(|s| {
                    (
                        s,
                        Some(shared(|| {
                            let (tx, rx) = flume::bounded::<u64>(CAPACITY);
                            (move |v| tx.send(v).unwrap(), move || rx.recv().unwrap())
                        })),
                    )
                })
                .collect(),
        },
        Impl { name: "std::sync::mpsc", shapes: vec![("spsc", Some(std_mpsc)), ("mpsc", None), ("mpmc", None)] },
        Impl { name: "rtrb (spins)", shapes: vec![("spsc", Some(rtrb)), ("mpsc", None), ("mpmc", None)] },
        Impl { name: "tokio::sync::mpsc", shapes: vec![("spsc", Some(tokio_mpsc)), ("mpsc", None), ("mpmc", None)] },
        Impl {
            name: "nimsync C ABI (dlopen)",
            shapes: [("spsc", 0u32), ("mpsc", 1), ("mpmc", 3)]
                .into_iter()
                .map(|(s, mode)| (s, c_abi::maker(mode)))
                .collect(),
        },
    ]
}

/// The same channel through `libnimsync.so`, loaded with `dlopen` so that this
/// process measures the C ABI's cost beside the core in the same rounds. The
/// library comes from `NIMSYNC_LIBRARY` or `target/release` (`cargo build
/// --release -p nimsync-ffi`); without it, this implementation is skipped.
mod c_abi {
    use super::{Maker, Pair, CAPACITY};
    use std::ffi::{c_void, CString};
    use std::sync::OnceLock;

    type New = unsafe extern "C" fn(usize, u32, *const c_void, *mut c_void, *mut *mut c_void) -> i32;
    type SendFn = unsafe extern "C" fn(*const c_void, usize) -> i32;
    type RecvFn = unsafe extern "C" fn(*const c_void, *mut usize) -> i32;
    type Free = unsafe extern "C" fn(*mut c_void);

    struct Lib {
        new: New,
        send: SendFn,
        recv: RecvFn,
        free: Free,
    }

    fn lib() -> Option<&'static Lib> {
        static LIB: OnceLock<Option<Lib>> = OnceLock::new();
        LIB.get_or_init(|| {
            let path = std::env::var("NIMSYNC_LIBRARY").unwrap_or_else(|_| {
                concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/libnimsync.so").to_string()
            });
            let cpath = CString::new(path.clone()).ok()?;
            // SAFETY: dlopen/dlsym with valid C strings; the symbols have the
            // signatures of include/nimsync.h, and the library stays loaded.
            unsafe {
                let handle = libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW);
                if handle.is_null() {
                    eprintln!("\n  (no {path}: the C ABI rows are skipped)");
                    return None;
                }
                let sym = |name: &str| {
                    let n = CString::new(name).unwrap();
                    let p = libc::dlsym(handle, n.as_ptr());
                    assert!(!p.is_null(), "{name} missing from {path}");
                    p
                };
                Some(Lib {
                    new: std::mem::transmute::<*mut c_void, New>(sym("nimsync_channel_new")),
                    send: std::mem::transmute::<*mut c_void, SendFn>(sym("nimsync_channel_send")),
                    recv: std::mem::transmute::<*mut c_void, RecvFn>(sym("nimsync_channel_recv")),
                    free: std::mem::transmute::<*mut c_void, Free>(sym("nimsync_channel_free")),
                })
            }
        })
        .as_ref()
    }

    /// A channel handle shared by the endpoints; freed with the last one.
    struct Handle(*mut c_void);
    // SAFETY: nimsync channel handles are thread-safe (include/nimsync.h).
    unsafe impl Send for Handle {}
    // SAFETY: as above: every nimsync_channel_* function may be called from any thread.
    unsafe impl Sync for Handle {}
    impl Drop for Handle {
        fn drop(&mut self) {
            // SAFETY: the handle came from nimsync_channel_new and is freed once.
            unsafe { (lib().expect("loaded").free)(self.0) }
        }
    }

    pub(super) fn maker(mode: u32) -> Option<Maker> {
        let lib = lib()?;
        Some(Box::new(move || {
            let mut raw = std::ptr::null_mut();
            // SAFETY: valid arguments; the status is checked.
            assert_eq!(unsafe { (lib.new)(CAPACITY, mode, std::ptr::null(), std::ptr::null_mut(), &mut raw) }, 0);
            let handle = std::sync::Arc::new(Handle(raw));
            Box::new(move || -> Pair {
                let (h1, h2) = (handle.clone(), handle.clone());
                (
                    Box::new(move |v| {
                        // SAFETY: a live handle.
                        assert_eq!(unsafe { (lib.send)(h1.0, v as usize) }, 0);
                    }),
                    Box::new(move || {
                        let mut v = 0usize;
                        // SAFETY: a live handle and a valid out pointer.
                        assert_eq!(unsafe { (lib.recv)(h2.0, &mut v) }, 0);
                        v as u64
                    }),
                )
            })
        }))
    }
}

/// Runs a future to completion on this thread, parking between polls (a
/// minimal executor, so each endpoint awaits on its own thread).
fn futures_block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; accept and ignore it.
    let n = env_usize("NIMSYNC_BENCH_MESSAGES", 10_000_000) as u64;
    let rounds = env_usize("NIMSYNC_BENCH_ROUNDS", 3);
    let ping_rounds = env_usize("NIMSYNC_BENCH_PINGS", 100_000);
    let cores = thread::available_parallelism().map_or(1, |c| c.get());
    // Creating a channel settles the barrier strategy reported below.
    drop(nimsync_core::Channel::<u64>::new(1, nimsync_core::Mode::Spsc));
    eprintln!(
        "channels: {n} messages per case, {rounds} rounds, {cores} cores, membarrier={}",
        nimsync_core::uses_membarrier()
    );
    let shapes = [("spsc", 1u64, 1u64), ("mpsc", 2, 1), ("mpmc", 2, 2)];
    // Warm up (clock ramp, page faults, thread creation paths) before timing.
    eprint!("  warming up");
    for _ in 0..3 {
        if let Some(make) = &impls_for_warmup()[0].shapes[0].1 {
            throughput(n.min(2_000_000), 1, 1, make());
        }
    }
    // NIMSYNC_BENCH_ONLY=name,name keeps only those implementations.
    let only: Vec<String> =
        std::env::var("NIMSYNC_BENCH_ONLY").map(|v| v.split(',').map(str::to_string).collect()).unwrap_or_default();
    let impls: Vec<Impl> =
        impls().into_iter().filter(|i| only.is_empty() || only.iter().any(|o| o == i.name)).collect();
    let mut results: Vec<(String, String, Vec<f64>)> = Vec::new();
    for round in 0..rounds {
        for (si, (shape, producers, consumers)) in shapes.iter().enumerate() {
            for imp in &impls {
                let Some(make) = &imp.shapes[si].1 else { continue };
                eprint!("\r  round {}/{rounds}: {shape:<5} {:<24}", round + 1, imp.name);
                let pairs = make();
                let mps = throughput(n, *producers, *consumers, pairs);
                match results.iter_mut().find(|r| r.0 == *shape && r.1 == imp.name) {
                    Some(r) => r.2.push(mps),
                    None => results.push((shape.to_string(), imp.name.to_string(), vec![mps])),
                }
            }
        }
    }
    eprintln!();
    for (shape, name, v) in results {
        let threads = shapes.iter().find(|s| s.0 == shape).map_or(0, |s| s.1 + s.2);
        println!(
            "{{\"suite\":\"rust\",\"metric\":\"throughput\",\"case\":\"{shape}\",\"impl\":\"{name}\",\"mps\":{:.3},\"threads\":{threads},\"cores\":{cores},\"oversubscribed\":{}}}",
            median(v) / 1e6,
            threads as usize > cores
        );
    }
    // Ping-pong: each impl's endpoint pair, one message in flight.
    type Run = Box<dyn FnOnce() -> Vec<Duration>>;
    let latency_impls: Vec<(&str, Run)> = vec![
        (
            "nimsync",
            Box::new(move || {
                let a = nimsync_core::Channel::new(CAPACITY, nimsync_core::Mode::Spsc).unwrap();
                let b = nimsync_core::Channel::new(CAPACITY, nimsync_core::Mode::Spsc).unwrap();
                let (a2, b2) = (a.clone(), b.clone());
                ping_pong(ping_rounds, move || {
                    (
                        move |v| {
                            a.send(v).unwrap();
                            b.recv().unwrap()
                        },
                        move |_| {
                            let v = a2.recv().unwrap();
                            b2.send(v).unwrap();
                            v
                        },
                    )
                })
            }),
        ),
        (
            "crossbeam-channel",
            Box::new(move || {
                let (atx, arx) = crossbeam_channel::bounded::<u64>(CAPACITY);
                let (btx, brx) = crossbeam_channel::bounded::<u64>(CAPACITY);
                ping_pong(ping_rounds, move || {
                    (
                        move |v| {
                            atx.send(v).unwrap();
                            brx.recv().unwrap()
                        },
                        move |_| {
                            let v = arx.recv().unwrap();
                            btx.send(v).unwrap();
                            v
                        },
                    )
                })
            }),
        ),
        (
            "flume",
            Box::new(move || {
                let (atx, arx) = flume::bounded::<u64>(CAPACITY);
                let (btx, brx) = flume::bounded::<u64>(CAPACITY);
                ping_pong(ping_rounds, move || {
                    (
                        move |v| {
                            atx.send(v).unwrap();
                            brx.recv().unwrap()
                        },
                        move |_| {
                            let v = arx.recv().unwrap();
                            btx.send(v).unwrap();
                            v
                        },
                    )
                })
            }),
        ),
        (
            "std::sync::mpsc",
            Box::new(move || {
                let (atx, arx) = std::sync::mpsc::sync_channel::<u64>(CAPACITY);
                let (btx, brx) = std::sync::mpsc::sync_channel::<u64>(CAPACITY);
                ping_pong(ping_rounds, move || {
                    (
                        move |v| {
                            atx.send(v).unwrap();
                            brx.recv().unwrap()
                        },
                        move |_| {
                            let v = arx.recv().unwrap();
                            btx.send(v).unwrap();
                            v
                        },
                    )
                })
            }),
        ),
        (
            "rtrb (spins)",
            Box::new(move || {
                let (mut atx, mut arx) = rtrb::RingBuffer::<u64>::new(CAPACITY);
                let (mut btx, mut brx) = rtrb::RingBuffer::<u64>::new(CAPACITY);
                ping_pong(ping_rounds, move || {
                    (
                        move |v| {
                            atx.push(v).unwrap();
                            loop {
                                if let Ok(v) = brx.pop() {
                                    return v;
                                }
                                std::hint::spin_loop();
                            }
                        },
                        move |_| {
                            let v = loop {
                                if let Ok(v) = arx.pop() {
                                    break v;
                                }
                                std::hint::spin_loop();
                            };
                            btx.push(v).unwrap();
                            v
                        },
                    )
                })
            }),
        ),
    ];
    for (name, run) in latency_impls.into_iter().filter(|(n, _)| only.is_empty() || only.iter().any(|o| o == n)) {
        eprint!("\r  ping-pong {name:<24}");
        let mut t = run();
        t.sort();
        let pct = |p: f64| t[((t.len() as f64 * p) as usize).min(t.len() - 1)].as_nanos();
        println!(
            "{{\"suite\":\"rust\",\"metric\":\"pingpong\",\"case\":\"pingpong\",\"impl\":\"{name}\",\"median_ns\":{},\"p99_ns\":{},\"cores\":{cores}}}",
            pct(0.5),
            pct(0.99)
        );
    }
    eprintln!();
}
