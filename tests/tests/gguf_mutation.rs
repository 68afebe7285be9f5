//! Mutation test of the GGUF reader over a real header: SmolLM2-135M's first `data_offset` bytes
//! (about 1.8 MB: 33 metadata entries with a 49k-token vocabulary and 48k merges, 272 tensors).
//!
//! Each case mutates the header in place (truncation, bit flips, byte overwrites, or a length,
//! count or type field set to an extreme value), parses, and undoes the mutation. A case passes
//! when the parser returns at all: `Ok` or any `Error`, never a panic, and its peak heap use stays
//! under [`peak_bound`]. The heap is measured by a counting global allocator in this test binary,
//! per thread, so the harness's other threads do not blur it.
//!
//! Deterministic: case `i` draws from `splitmix64(SEED ^ i)`. A failure prints the case, the seed
//! and the mutation; rerun one case with `AETHER_MUTATION_CASE=i` (and `AETHER_MUTATION_SEED=s`
//! when the seed was changed). `AETHER_MUTATION_CASES=n` runs more cases.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use aether_core::gguf::{self, Gguf, HeaderParse, Value};

const SEED: u64 = 0x6767_7566_2d6d_7574; // "gguf-mut"
const CASES: u64 = 20_000;

// ------------------------------------------------------------------------ counting allocator

/// Forwards to the system allocator, counting live and peak bytes for the calling thread.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn grow(n: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + n as isize;
        live.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

fn shrink(n: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get() - n as isize));
}

// SAFETY: every call forwards to `System` with the caller's arguments unchanged; the counters are
// const-initialised thread-locals without destructors, so touching them never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrink(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Count old and new as live together: a moving realloc holds both for a moment.
            grow(new_size);
            shrink(layout.size());
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f`, returning its result and the most heap it held at once above what was live before.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    (out, (PEAK.with(Cell::get) - base).max(0) as usize)
}

/// The most heap one parse may hold: the reader keeps borrowed slices, so it needs a few dozen
/// bytes per metadata entry and tensor actually present, never an amount a count or length field
/// claims. A quarter of the header size leaves an order of magnitude over what SmolLM2 needs,
/// and is far below what one inflated count would reserve.
fn peak_bound(header_len: usize) -> usize {
    header_len / 4
}

// ------------------------------------------------------------------------ PRNG

/// splitmix64: small, fast, and fully determined by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

// ------------------------------------------------------------------------ where the fields are

/// Offsets of the header's length, count and type fields, found by walking the valid header
/// independently of the reader under test.
#[derive(Default)]
struct Fields {
    /// u64 fields, by kind: the two counts, key lengths, string value lengths (including
    /// array elements), array lengths, tensor name lengths, tensor dims, tensor offsets.
    u64s: [Vec<usize>; 7],
    /// u32 fields, by kind: version, value types, array element types, tensor ranks, tensor types.
    u32s: [Vec<usize>; 5],
}

const U64_KINDS: [&str; 7] =
    ["count", "key length", "string length", "array length", "tensor name length", "dim", "tensor offset"];
const U32_KINDS: [&str; 5] = ["version", "value type", "array type", "tensor rank", "tensor type"];

struct Walk<'a> {
    b: &'a [u8],
    pos: usize,
    f: Fields,
}

impl Walk<'_> {
    fn u32(&mut self, kind: usize) -> u32 {
        self.f.u32s[kind].push(self.pos);
        let v = u32::from_le_bytes(self.b[self.pos..self.pos + 4].try_into().unwrap());
        self.pos += 4;
        v
    }

    fn u64(&mut self, kind: usize) -> u64 {
        self.f.u64s[kind].push(self.pos);
        let v = u64::from_le_bytes(self.b[self.pos..self.pos + 8].try_into().unwrap());
        self.pos += 8;
        v
    }

    fn string(&mut self, kind: usize) {
        let n = self.u64(kind) as usize;
        self.pos += n;
    }

    fn value(&mut self, ty: u32) {
        match ty {
            0 | 1 | 7 => self.pos += 1,
            2 | 3 => self.pos += 2,
            4..=6 => self.pos += 4,
            10..=12 => self.pos += 8,
            8 => self.string(2),
            9 => {
                let elem = self.u32(2);
                let n = self.u64(3);
                for _ in 0..n {
                    self.value(elem);
                }
            }
            _ => panic!("unknown value type {ty} at {} in the unmutated header", self.pos),
        }
    }
}

fn walk(header: &[u8]) -> Fields {
    let mut w = Walk { b: header, pos: 4, f: Fields::default() };
    w.u32(0);
    let n_tensors = w.u64(0);
    let n_kv = w.u64(0);
    for _ in 0..n_kv {
        w.string(1);
        let ty = w.u32(1);
        w.value(ty);
    }
    for _ in 0..n_tensors {
        w.string(4);
        let n_dims = w.u32(3);
        for _ in 0..n_dims {
            w.u64(5);
        }
        w.u32(4);
        w.u64(6);
    }
    w.f
}

// ------------------------------------------------------------------------ mutations

/// How a case parses the mutated bytes.
#[derive(Clone, Copy, Debug)]
enum Parse {
    /// `Gguf::parse` over the file, cut to `len` bytes.
    Whole { len: usize },
    /// `parse_header` over the header prefix, told the real file length.
    HeaderKnownLen,
    /// `parse_header` streaming over the first `len` bytes, length unknown.
    Streaming { len: usize },
}

/// Writes to `buf`, remembering the old bytes so the case can be undone.
struct Edits<'a> {
    buf: &'a mut [u8],
    undo: Vec<(usize, u8)>,
}

impl Edits<'_> {
    fn set(&mut self, at: usize, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            if let Some(slot) = self.buf.get_mut(at + i) {
                self.undo.push((at + i, *slot));
                *slot = b;
            }
        }
    }

    fn byte(&self, at: usize) -> u8 {
        self.buf[at]
    }

    fn read_u64(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.buf[at..at + 8].try_into().unwrap())
    }

    fn restore(self) {
        for &(at, b) in self.undo.iter().rev() {
            self.buf[at] = b;
        }
    }
}

/// An extreme or nearby value for a u64 field currently holding `old` at byte `at`.
fn wild_u64(rng: &mut Rng, old: u64, at: usize, header_len: usize) -> u64 {
    let left = (header_len - at) as u64;
    match rng.below(14) {
        0 => u64::MAX,
        1 => u64::MAX - rng.below(64),
        2 => 1 << 63,
        3 => 1 << rng.below(64),
        4 => (1 << 30) + rng.below(3) - 1,
        5 => 1 << 32,
        6 => (left + rng.below(3)).wrapping_sub(1),
        7 => old.wrapping_add(1),
        8 => old.wrapping_sub(1),
        9 => old.wrapping_mul(2),
        10 => 0,
        11 => rng.below(1 << 20),
        12 => old ^ (1 << rng.below(64)),
        _ => rng.next(),
    }
}

fn wild_u32(rng: &mut Rng, old: u32) -> u32 {
    match rng.below(6) {
        0 => u32::MAX,
        1 => rng.below(40) as u32,
        2 => old.swap_bytes(),
        3 => old ^ (1 << rng.below(32)),
        4 => 1 << rng.below(32),
        _ => rng.next() as u32,
    }
}

/// Applies case `rng`'s mutation to the header (`buf[..header_len]`), returning how to parse and a
/// description for failure messages.
fn mutate(rng: &mut Rng, e: &mut Edits, f: &Fields, header_len: usize) -> (Parse, String) {
    let file_len = e.buf.len();
    let whole = Parse::Whole { len: file_len };
    let kind = rng.below(10);
    let mut what = String::new();
    let mut parse = whole;
    match kind {
        // Truncation anywhere in the header, or (rarely) in the data section.
        0 | 1 => {
            let len = if rng.below(8) == 0 {
                header_len + rng.below((file_len - header_len) as u64) as usize
            } else {
                rng.below(header_len as u64 + 1) as usize
            };
            parse = Parse::Whole { len };
            what = format!("truncate to {len}");
        }
        // Bit flips.
        2 => {
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(header_len as u64) as usize;
                let bit = rng.below(8);
                let b = e.byte(at) ^ (1 << bit);
                e.set(at, &[b]);
                what += &format!("flip bit {bit} of byte {at}; ");
            }
        }
        // Byte overwrites, clustered in the first 4 KiB (counts, keys, types) half the time.
        3 => {
            let span = if rng.below(2) == 0 { 4096.min(header_len) } else { header_len };
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(span as u64) as usize;
                let random = rng.next() as u8;
                let b = rng.pick(&[0x00, 0xff, 0x80, 0x7f, random]);
                e.set(at, &[b]);
                what += &format!("byte {at} = {b:#04x}; ");
            }
        }
        // A u64 length/count field set to an extreme value (sometimes two of them).
        4..=6 => {
            for _ in 0..1 + (rng.below(4) == 0) as u64 {
                let k = rng.below(U64_KINDS.len() as u64) as usize;
                let at = rng.pick(&f.u64s[k]);
                let v = wild_u64(rng, e.read_u64(at), at, header_len);
                e.set(at, &v.to_le_bytes());
                what += &format!("{} at {at} = {v:#x}; ", U64_KINDS[k]);
            }
        }
        // A u32 type/rank field set to another value.
        7 => {
            let k = rng.below(U32_KINDS.len() as u64) as usize;
            let at = rng.pick(&f.u32s[k]);
            let old = u32::from_le_bytes(e.buf[at..at + 4].try_into().unwrap());
            let v = wild_u32(rng, old);
            e.set(at, &v.to_le_bytes());
            what = format!("{} at {at} = {v:#x}", U32_KINDS[k]);
        }
        // A run of header bytes copied over another place: plausible fields in the wrong spot.
        8 => {
            let n = 1 + rng.below(64) as usize;
            let from = rng.below((header_len - n) as u64) as usize;
            let to = rng.below((header_len - n) as u64) as usize;
            let chunk = e.buf[from..from + n].to_vec();
            e.set(to, &chunk);
            what = format!("copy {n} bytes from {from} to {to}");
        }
        // A length field made huge, then the header parsed alone: with the real file length, or
        // streaming over a random prefix.
        _ => {
            let k = rng.below(U64_KINDS.len() as u64) as usize;
            let at = rng.pick(&f.u64s[k]);
            let v = wild_u64(rng, e.read_u64(at), at, header_len);
            e.set(at, &v.to_le_bytes());
            what = format!("{} at {at} = {v:#x}", U64_KINDS[k]);
        }
    }
    // A quarter of the non-truncating cases parse the header alone.
    if !matches!(kind, 0 | 1) && (kind == 9 || rng.below(4) == 0) {
        parse = if rng.below(2) == 0 {
            Parse::HeaderKnownLen
        } else {
            Parse::Streaming { len: rng.below(header_len as u64 + 1) as usize }
        };
    }
    (parse, what)
}

/// Reads what a successful parse offers, as a caller would: every value, array element and tensor.
fn touch(g: &Gguf<'_>) -> usize {
    fn walk(v: &Value<'_>) -> usize {
        match v {
            Value::Array(a) => a.iter().map(|x| walk(&x)).sum::<usize>() + 1,
            Value::String(s) => s.len(),
            _ => 1,
        }
    }
    let m = g.metadata();
    let mut n: usize = m.iter().map(|(k, v)| k.len() + walk(v)).sum();
    for t in g.tensors() {
        n += g.tensor_data(t).len() + t.n_elements() as usize % 7 + t.n_rows() as usize % 5;
        n += g.header.tensor_range(t).end as usize % 3;
    }
    n += m.get_str_array("tokenizer.ggml.tokens").map(|v| v.len()).unwrap_or(0);
    n += m.get_i32_array("tokenizer.ggml.token_type").map(|v| v.len()).unwrap_or(0);
    n
}

/// Outcome counts, for the summary line.
#[derive(Default, Debug)]
struct Tally {
    ok: u64,
    need: u64,
    err: u64,
}

/// Parses one mutated case; returns the parse's peak heap use (reading the result afterwards is
/// not counted: collecting a vocabulary into a `Vec` is the caller's allocation, not the parser's).
fn run_case(buf: &[u8], parse: Parse, header_len: usize, full_touch: bool, tally: &mut Tally) -> usize {
    match parse {
        Parse::Whole { len } => {
            let (result, peak) = peak_of(|| Gguf::parse(&buf[..len]));
            match result {
                Ok(g) => {
                    tally.ok += 1;
                    // Walking a 49k-string vocabulary is the slow part: do it for a sample.
                    if full_touch {
                        std::hint::black_box(touch(&g));
                    } else {
                        for t in g.tensors() {
                            std::hint::black_box(g.tensor_data(t));
                        }
                    }
                }
                Err(e) => {
                    tally.err += 1;
                    std::hint::black_box(e.to_string());
                }
            }
            peak
        }
        Parse::HeaderKnownLen => {
            let total = Some(buf.len() as u64);
            let (result, peak) = peak_of(|| gguf::parse_header(&buf[..header_len], total));
            match result {
                Ok(HeaderParse::Complete(_)) => tally.ok += 1,
                // The mutated header may run on past the prefix: more is fine, past the end is not.
                Ok(HeaderParse::NeedBytes(n)) => {
                    assert!(n > header_len as u64 && n <= buf.len() as u64, "asked for {n} bytes");
                    tally.need += 1;
                }
                Err(_) => tally.err += 1,
            }
            peak
        }
        Parse::Streaming { len } => {
            let (result, peak) = peak_of(|| gguf::parse_header(&buf[..len], None));
            match result {
                Ok(HeaderParse::Complete(_)) => tally.ok += 1,
                Ok(HeaderParse::NeedBytes(n)) => {
                    assert!(n > len as u64, "streaming asked for {n} bytes with {len} in hand");
                    tally.need += 1;
                }
                Err(_) => tally.err += 1,
            }
            peak
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

/// What one worker saw: outcome counts and its largest parse.
#[derive(Default)]
struct Summary {
    tally: Tally,
    worst: usize,
    worst_case: String,
}

/// The fixed inputs every case shares.
struct Setup<'a> {
    fields: &'a Fields,
    header_len: usize,
    bound: usize,
    seed: u64,
}

/// Runs `cases` over `buf` (a private copy of the model), mutating and restoring it in place.
fn run_cases(buf: &mut [u8], cases: impl Iterator<Item = u64>, s: &Setup) -> Summary {
    let mut sum = Summary::default();
    let seed = s.seed;
    for case in cases {
        let mut rng = Rng(seed ^ case);
        let mut edits = Edits { buf: &mut *buf, undo: Vec::new() };
        let (parse, what) = mutate(&mut rng, &mut edits, s.fields, s.header_len);
        let undo = std::mem::take(&mut edits.undo);
        let full_touch = case % 16 == 0;
        let tally = &mut sum.tally;
        let outcome =
            catch_unwind(AssertUnwindSafe(|| run_case(buf, parse, s.header_len, full_touch, tally)));
        let Ok(peak) = outcome else {
            panic!("case {case} (seed {seed:#x}) panicked: {parse:?} after {what}");
        };
        if peak > sum.worst {
            (sum.worst, sum.worst_case) = (peak, format!("case {case}: {parse:?} after {what}"));
        }
        assert!(
            peak <= s.bound,
            "case {case} (seed {seed:#x}) held {peak} bytes of heap, over the {}-byte bound: \
             {parse:?} after {what}",
            s.bound
        );
        Edits { buf: &mut *buf, undo }.restore();
    }
    sum
}

#[test]
fn mutated_smollm2_headers_never_panic_and_stay_small() {
    let model = aether_tests::default_model_bytes();
    let header_len = Gguf::parse(&model).expect("the unmutated model parses").header.data_offset as usize;
    let fields = walk(&model[..header_len]);
    for (k, v) in fields.u64s.iter().enumerate() {
        assert!(!v.is_empty(), "no {} fields found in the header", U64_KINDS[k]);
    }
    let seed = env_u64("AETHER_MUTATION_SEED").unwrap_or(SEED);
    let setup = Setup { fields: &fields, header_len, bound: peak_bound(header_len), seed };
    let cases = match env_u64("AETHER_MUTATION_CASE") {
        Some(i) => i..i + 1,
        None => 0..env_u64("AETHER_MUTATION_CASES").unwrap_or(CASES),
    };
    let n_cases = cases.end - cases.start;

    // Cases are independent (each draws from its own seed), so workers split them round-robin,
    // each over its own copy of the file; the allocator counts per thread.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4) as u64;
    let started = Instant::now();
    let summaries: Vec<Summary> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (setup, model, cases) = (&setup, &model, cases.clone());
                scope.spawn(move || {
                    let mut buf = model.clone();
                    let sum = run_cases(&mut buf, cases.skip(w as usize).step_by(workers as usize), setup);
                    assert!(buf == *model, "the undo log left the file changed");
                    sum
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    let secs = started.elapsed().as_secs_f64();

    let mut total = Tally::default();
    for s in &summaries {
        (total.ok, total.need, total.err) =
            (total.ok + s.tally.ok, total.need + s.tally.need, total.err + s.tally.err);
    }
    assert_eq!(total.ok + total.need + total.err, n_cases);
    let worst = summaries.iter().max_by_key(|s| s.worst).expect("one worker");
    eprintln!(
        "{n_cases} cases on {workers} threads in {secs:.1}s over a {header_len}-byte header: {} ok, \
         {} need-bytes, {} errors; peak heap per parse {} bytes (bound {}), worst {}",
        total.ok, total.need, total.err, worst.worst, setup.bound, worst.worst_case
    );
}

/// A file of `header` followed by `filler` zero bytes.
fn padded(header: &[u8], filler: usize) -> Vec<u8> {
    let mut f = header.to_vec();
    f.resize(header.len() + filler, 0);
    f
}

/// Regression: a count small enough to pass the "fits in the remaining bytes" check of a large
/// file used to reserve that many table entries (tens of bytes each) before parsing one. A 24-byte
/// header over 16 MiB of zeros reserved 100 MB; now the tables grow only as entries parse.
#[test]
fn inflated_counts_reserve_nothing_big() {
    const LIMIT: usize = 256 << 10;
    for (n_tensors, n_kv) in [(0u64, 1u64 << 20), (500_000, 0), (500_000, 1 << 20)] {
        let mut head = b"GGUF".to_vec();
        head.extend(3u32.to_le_bytes());
        head.extend(n_tensors.to_le_bytes());
        head.extend(n_kv.to_le_bytes());
        let file = padded(&head, 16 << 20);
        let (result, peak) = peak_of(|| Gguf::parse(&file).map(|_| ()));
        assert!(result.is_err(), "zeros are not a valid table");
        assert!(peak < LIMIT, "{n_tensors} tensors, {n_kv} entries claimed: parse held {peak} bytes");
        let (_, peak) = peak_of(|| gguf::parse_header(&file, None).map(|_| ()));
        assert!(peak < LIMIT, "streaming: parse held {peak} bytes");
    }
}
