//! What the benchmarks share: their payloads and workload kinds, the
//! per-thread CPU clock, a timer for work after an untimed setup, the
//! warm-up before the first row, criterion's medians read back for the
//! tables of ratios printed after a run, and paired rounds for the small
//! frames.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use criterion::measurement::{Measurement, ValueFormatter, WallTime};

/// How long the receive and send benchmarks run every library on every
/// workload, untimed, before the first measurement: on a machine that was
/// idle, the rows measured first in a run were slower for every library
/// (in the send benchmark, 16 B frames at 58.6 M frames/s in the first row
/// against 77.7 M in a later row taking the same code), so their ratios
/// depended on the order of the run.
pub(crate) const WARM_UP: Duration = Duration::from_secs(3);

/// Text that is mostly not ASCII: 73 of its 119 bytes (61%) are in two-,
/// three- and four-byte sequences (21, 9 and 1 characters), against 46 ASCII
/// characters. The 16 B frames hold "Grüße — Пр" (11 of 16 bytes not
/// ASCII).
pub(crate) const TEXT: &str =
    "Grüße — Привет, мир! Hello 世界へ 😀 données, naïve Ελληνικά 日本語 ✓ €20 per byte. ";

pub(crate) fn binary_payload(size: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

/// Valid UTF-8 of exactly `size` bytes: [`TEXT`] repeated, cut on a
/// character boundary and padded with ASCII.
pub(crate) fn text_payload(size: usize) -> Vec<u8> {
    let mut text = String::with_capacity(size);
    for ch in TEXT.chars().cycle() {
        if text.len() + ch.len_utf8() > size {
            break;
        }
        text.push(ch);
    }
    while text.len() < size {
        text.push('.');
    }
    text.into_bytes()
}

pub(crate) fn size_label(size: usize) -> String {
    match size {
        s if s >= 1 << 20 => format!("{}MiB", s >> 20),
        s if s >= 1 << 10 => format!("{}KiB", s >> 10),
        s => format!("{s}B"),
    }
}

/// The time the benchmark thread spent running, from the kernel's per-thread
/// CPU clock: time spent descheduled while other processes use the cores is
/// left out.
pub(crate) struct ThreadCpuTime;

impl ThreadCpuTime {
    #[cfg(unix)]
    fn now() -> Duration {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid, writable `timespec` for the whole call.
        let result = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
        assert_eq!(result, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
        Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
    }

    /// Without a per-thread clock: a monotonic one.
    #[cfg(not(unix))]
    fn now() -> Duration {
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        ORIGIN.get_or_init(std::time::Instant::now).elapsed()
    }
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        Self::now()
    }

    fn end(&self, start: Duration) -> Duration {
        Self::now().saturating_sub(start)
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        // Values are durations, formatted as wall-clock ones are.
        static WALL_TIME: WallTime = WallTime;
        WALL_TIME.formatter()
    }
}

/// Times the part of an iteration that follows an untimed setup, with the
/// clock criterion uses.
// Only the receive benchmark times work after a setup.
#[allow(dead_code)]
pub(crate) struct Timer<M> {
    clock: M,
    /// What reading the clock twice adds to an interval (the median of
    /// empty intervals), taken off every timed interval.
    overhead: Duration,
}

#[allow(dead_code)]
impl<M: Measurement<Value = Duration>> Timer<M> {
    pub(crate) fn new(clock: M) -> Self {
        let mut empty: Vec<Duration> = (0..2001)
            .map(|_| {
                let start = clock.start();
                clock.end(start)
            })
            .collect();
        empty.sort_unstable();
        let overhead = empty[empty.len() / 2];
        Self { clock, overhead }
    }

    /// Run `iters` iterations of `run`, each after an untimed `setup`, and
    /// return the time spent in `run` alone.
    pub(crate) fn time_iters<T>(
        &self,
        iters: u64,
        state: &mut T,
        mut setup: impl FnMut(&mut T),
        mut run: impl FnMut(&mut T),
    ) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            setup(state);
            let start = self.clock.start();
            run(state);
            total += self.clock.end(start).saturating_sub(self.overhead);
        }
        total
    }
}

/// Where criterion writes its results: `CRITERION_HOME`, or `criterion`
/// in the target directory.
pub(crate) fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")))
        .join("criterion")
}

/// Criterion's median time of one benchmark, in nanoseconds per iteration,
/// if it was measured in this run (its estimates were written after
/// `since`).
pub(crate) fn median_since(
    group: &str,
    function: &str,
    label: &str,
    since: SystemTime,
) -> Option<f64> {
    let dir = criterion_home()
        .join(group)
        .join(function.replace('/', "_"))
        .join(label);
    median_in(&dir, since)
}

/// The median of the benchmark whose results criterion keeps in `dir`, if
/// they were written after `since`.
pub(crate) fn median_in(dir: &std::path::Path, since: SystemTime) -> Option<f64> {
    let path = dir.join("new").join("estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < since {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let median = &text[text.find("\"median\"")?..];
    const KEY: &str = "\"point_estimate\":";
    let estimate = &median[median.find(KEY)? + KEY.len()..];
    estimate[..estimate.find([',', '}'])?].trim().parse().ok()
}

/// The kind of the data frames of a workload.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Binary,
    Text,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Binary => "binary",
            Kind::Text => "text",
        }
    }

    pub(crate) fn opcode(self) -> u8 {
        match self {
            Kind::Binary => 0x2,
            Kind::Text => 0x1,
        }
    }
}

/// One library's path in [`paired_rounds`]: `run(n)` does the work `n`
/// times in a loop of its own (no call through a pointer per iteration) and
/// returns the CPU time the timed part took.
pub(crate) struct Contender<'a> {
    pub(crate) name: &'static str,
    run: Box<dyn FnMut(u64) -> Duration + 'a>,
}

impl<'a> Contender<'a> {
    /// A path whose whole call is timed.
    // Only the send benchmark times whole calls.
    #[allow(dead_code)]
    pub(crate) fn new(name: &'static str, mut run: impl FnMut(u64) + 'a) -> Self {
        Self {
            name,
            run: Box::new(move |n| {
                let start = ThreadCpuTime::now();
                run(n);
                ThreadCpuTime::now().saturating_sub(start)
            }),
        }
    }

    /// A path that times itself, leaving out its setup (see [`Timer`]).
    // Only the receive benchmark times work after a setup.
    #[allow(dead_code)]
    pub(crate) fn timed(name: &'static str, run: impl FnMut(u64) -> Duration + 'a) -> Self {
        Self {
            name,
            run: Box::new(run),
        }
    }
}

/// What [`paired_rounds`] measured.
pub(crate) struct Paired {
    /// Each contender's median time per call over the rounds, in ns.
    pub(crate) medians: Vec<f64>,
    /// The median over the rounds of (the fastest peer's time in the round
    /// / the first contender's time in the same round).
    pub(crate) ratio: f64,
    /// The peer with the lowest median time.
    pub(crate) best_peer: usize,
}

impl Paired {
    /// The header of a table of [`row`](Self::row)s.
    pub(crate) fn header() -> String {
        format!(
            "{:<13} {:>16} {:>16}  {:<25} {:>7}",
            "workload", "wsproto-core", "best peer", "", "ratio"
        )
    }

    /// A row of the table: ours and the best peer in frames per second
    /// (`frames` per call), the peer's name, and the ratio.
    pub(crate) fn row(&self, workload: &str, contenders: &[Contender<'_>], frames: f64) -> String {
        let rate = |nanos: f64| format!("{:.1} M frames/s", frames / nanos * 1e3);
        format!(
            "{:<13} {:>16} {:>16}  {:<25} {:>6.2}x",
            workload,
            rate(self.medians[0]),
            rate(self.medians[self.best_peer]),
            contenders[self.best_peer].name,
            self.ratio
        )
    }
}

/// Time the contenders in turn, each for about `slice` of thread CPU time,
/// `rounds` times over, and compare the first (ours) with the others round
/// by round. A slow phase of the machine lasting seconds, which moves
/// criterion's rows one after another by a quarter or more at 16 B, falls on
/// every contender of the rounds it spans, so the ratio of a round keeps
/// its value.
pub(crate) fn paired_rounds(
    contenders: &mut [Contender<'_>],
    rounds: usize,
    slice: Duration,
) -> Paired {
    // Calls per slice, from a short calibration of each contender.
    let calls: Vec<u64> = contenders
        .iter_mut()
        .map(|c| {
            let mut n = 4;
            loop {
                let took = (c.run)(n);
                if took >= slice / 8 || n >= 1 << 32 {
                    let per_call = took.as_secs_f64() / n as f64;
                    break ((slice.as_secs_f64() / per_call.max(1e-12)) as u64).max(1);
                }
                n *= 4;
            }
        })
        .collect();
    let mut times = vec![Vec::with_capacity(rounds); contenders.len()];
    for _ in 0..rounds {
        for (i, c) in contenders.iter_mut().enumerate() {
            let took = (c.run)(calls[i]);
            times[i].push(took.as_nanos() as f64 / calls[i] as f64);
        }
    }
    let median = |values: &[f64]| {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    let ratios: Vec<f64> = (0..rounds)
        .map(|r| {
            let best = times[1..]
                .iter()
                .map(|t| t[r])
                .fold(f64::INFINITY, f64::min);
            best / times[0][r]
        })
        .collect();
    let medians: Vec<f64> = times.iter().map(|t| median(t)).collect();
    let best_peer = (1..medians.len())
        .min_by(|&a, &b| medians[a].total_cmp(&medians[b]))
        .unwrap_or(0);
    Paired {
        medians,
        ratio: median(&ratios),
        best_peer,
    }
}
