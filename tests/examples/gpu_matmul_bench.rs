//! Times the prefill product (`MatMul`) on this machine's adapter and prints TFLOP/s: the
//! tensor-core kernel (`matmul_coop_<type>`, where the adapter has cooperative matrices) against
//! the portable f32 one (`matmul_<type>`, the same device opened with `no_coop_matrix`). A
//! program, not a timed test:
//!
//!     cargo run --release -p aether-tests --example gpu_matmul_bench [-- TYPE:ROWSxCOLS ...]
//!
//! Default cases: llama3-8b's Q4_K projections (4096x4096 attn_q/o, 14336x4096 ffn_gate/up,
//! 4096x14336 ffn_down) and Q8_0/Q6_K/F16 4096x4096, at `AETHER_MATMUL_TOKENS` tokens (default
//! 512, prefill's chunk; a comma-separated list runs each). `AETHER_SPLIT_TARGETS=0,256,...` times
//! the tensor-core kernel once per split-K target (`GpuOptions::split_target`; 0 = unsplit;
//! default: the built-in target only). Method: COPIES distinct weight tensors, one compute pass of ROUNDS rounds
//! over all of them, timed with timestamp queries (GPU time) when the adapter has them and the wall
//! clock from submit to completion; median of REPS passes after a warm-up. Before timing, the first
//! 8 tokens of the first copy are checked against the CPU twin (NMSE printed). It first prints the
//! adapter's cooperative-matrix configurations.
//! `AETHER_MATMUL_NO_F32=1` skips the portable kernel. `AETHER_MATMUL_FILES=a.wgsl,b.wgsl` also
//! times each file as the kernel (`MatMul::with_source`), labelled by its stem: variants tried on
//! a device with no rebuild. `AETHER_MATMUL_NO_CHECK=1` skips those variants' CPU check (for
//! variants that leave out part of the work to time the rest).
//!
//! Each case's weights, X and CPU check are made once for both kernels. The first case timed in a
//! process can read slow (on the H100 a 128 × 64-tile Q4_K 4096 × 4096 read 2,585 µs first and
//! 745 µs a few seconds later, same pipeline): put a throw-away case first when comparing.

use std::time::Instant;

use aether_core::gpu::{Gpu, GpuOptions, GpuTensor, MatMul, Step, StepBuffer, matmul_cpu};
use aether_core::quant::GgmlType;
use aether_tests::gpu::{Rng, assert_nmse, weights};

const COPIES: usize = 4;
const ROUNDS: usize = 5;
const REPS: usize = 7;
const CHECKED_TOKENS: usize = 8;

fn parse_case(s: &str) -> (GgmlType, usize, usize) {
    let (ty, shape) = s.split_once(':').expect("TYPE:ROWSxCOLS");
    let ty = GgmlType::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(ty)).expect("known type");
    let (r, c) = shape.split_once('x').expect("ROWSxCOLS");
    (ty, r.parse().expect("rows"), c.parse().expect("cols"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// GPU seconds (timestamps) if available, and wall seconds, of one pass of ROUNDS over `ops`.
fn time_pass(
    gpu: &Gpu,
    ops: &[MatMul],
    staging_only: bool,
    n_tokens: u32,
    query: Option<&(wgpu::QuerySet, wgpu::Buffer, wgpu::Buffer)>,
) -> (Option<f64>, f64) {
    let mut enc = gpu.device().create_command_encoder(&Default::default());
    {
        let timestamp_writes = query.map(|(q, _, _)| wgpu::ComputePassTimestampWrites {
            query_set: q,
            beginning_of_pass_write_index: Some(0),
            end_of_pass_write_index: Some(1),
        });
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes });
        for _ in 0..ROUNDS {
            for op in ops {
                match staging_only {
                    false => op.encode(&mut pass, n_tokens),
                    true => op.encode_staging(&mut pass, n_tokens),
                }
            }
        }
    }
    if let Some((q, resolve, read)) = query {
        enc.resolve_query_set(q, 0..2, resolve, 0);
        enc.copy_buffer_to_buffer(resolve, 0, read, 0, 16);
    }
    let t0 = Instant::now();
    gpu.submit(enc, "bench pass").expect("submit");
    gpu.device().poll(wgpu::PollType::wait_indefinitely()).expect("poll");
    let wall = t0.elapsed().as_secs_f64();
    let gpu_s = query.map(|(_, _, read)| {
        let slice = read.slice(..);
        slice.map_async(wgpu::MapMode::Read, |r| r.expect("map"));
        gpu.device().poll(wgpu::PollType::wait_indefinitely()).expect("poll");
        let ticks: Vec<u64> = {
            let view = slice.get_mapped_range().expect("mapped");
            view.as_chunks::<8>().0.iter().map(|b| u64::from_le_bytes(*b)).collect()
        };
        read.unmap();
        (ticks[1] - ticks[0]) as f64 * gpu.queue().get_timestamp_period() as f64 * 1e-9
    });
    gpu.check("bench").expect("no GPU error");
    (gpu_s, wall)
}

/// One case's operands, made once for every kernel timed on it (quantizing and the CPU twin take
/// seconds on the large shapes): weight bytes, X, and the CPU's first CHECKED_TOKENS tokens of Y.
struct Operands {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    n_tokens: usize,
    bytes: Vec<u8>,
    x: Vec<f32>,
    want: Vec<f32>,
}

impl Operands {
    fn new(ty: GgmlType, rows: usize, cols: usize, n_tokens: usize, bytes: Vec<u8>) -> Operands {
        let mut rng = Rng::new(43);
        let x = rng.vec(n_tokens * cols);
        let checked = CHECKED_TOKENS.min(n_tokens);
        let want = matmul_cpu(ty, &bytes, &x[..checked * cols], checked, cols).expect("cpu");
        Operands { ty, rows, cols, n_tokens, bytes, x, want }
    }
}

/// Times `case` on `gpu`'s built-in kernel, or with `variant` (label, source) on that kernel file.
fn bench(gpu: &Gpu, case: &Operands, variant: Option<(&str, &str)>) {
    let Operands { ty, rows, cols, n_tokens, ref bytes, ref x, ref want } = *case;
    let xb = gpu.storage("x", (x.len() * 4) as u64).expect("x");
    gpu.queue().write_buffer(&xb, 0, bytemuck::cast_slice(x));
    let step = StepBuffer::new(gpu).expect("step");
    step.write(gpu, Step::new(0, n_tokens as u32));
    let tensors: Vec<GpuTensor> = (0..COPIES)
        .map(|i| {
            GpuTensor::upload(gpu, &format!("w{i}"), ty, cols as u64, rows as u64, bytes, &mut |_, _| {})
                .expect("upload")
        })
        .collect();
    let ys: Vec<wgpu::Buffer> =
        (0..COPIES).map(|_| gpu.storage("y", (rows * n_tokens * 4) as u64).expect("y")).collect();
    let ops: Vec<MatMul> = tensors
        .iter()
        .zip(&ys)
        .map(|(w, y)| match variant {
            None => MatMul::new(gpu, w, &xb, 0, y, 0, &step, n_tokens as u32),
            Some((label, source)) => {
                MatMul::with_source(gpu, w, (&xb, 0), (y, 0), &step, n_tokens as u32, label, source)
            }
        })
        .map(|m| m.expect("matmul"))
        .collect();

    time_pass(gpu, &ops[..1], false, n_tokens as u32, None);
    let checked = CHECKED_TOKENS.min(n_tokens);
    let got = pollster::block_on(gpu.read_f32(&ys[0], 0, checked * rows)).expect("read y");
    let splits = ops[0].splits(n_tokens as u32);
    let label = match (ops[0].staged_chunks(n_tokens as u32), splits) {
        (0, 1) => ops[0].key().to_string(),
        (0, s) => format!("{} k/{s}", ops[0].key()),
        (c, _) => format!("staged {} ({c} chunks)", ops[0].key()),
    };
    // A variant timed for what it costs, not what it computes, is not checked.
    let nmse = match std::env::var_os("AETHER_MATMUL_NO_CHECK").is_some() && variant.is_some() {
        true => f64::NAN,
        false => assert_nmse(&got, want, 5e-4, &format!("{label} {rows}x{cols}")),
    };

    let dev = gpu.device();
    let query = gpu.caps().timestamps.then(|| {
        let q = dev.create_query_set(&wgpu::QuerySetDescriptor {
            label: None,
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
        let buf = |usage| {
            dev.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: 16,
                usage,
                mapped_at_creation: false,
            })
        };
        let resolve = buf(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC);
        let read = buf(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
        (q, resolve, read)
    });
    // A staged step is timed whole, then its staging alone (GB/s of f16 written).
    let staged = ops[0].staged_chunks(n_tokens as u32) > 0;
    for staging_only in [false, true].into_iter().filter(|&only| !only || staged) {
        time_pass(gpu, &ops, staging_only, n_tokens as u32, query.as_ref()); // warm-up
        let runs: Vec<(Option<f64>, f64)> =
            (0..REPS).map(|_| time_pass(gpu, &ops, staging_only, n_tokens as u32, query.as_ref())).collect();
        let dispatches = (COPIES * ROUNDS) as f64;
        let (work, unit) = match staging_only {
            false => (2.0 * rows as f64 * cols as f64 * n_tokens as f64, "TFLOP/s"),
            true => (2.0 * rows as f64 * cols.next_multiple_of(32) as f64, "TB/s f16"),
        };
        let wall = median(runs.iter().map(|r| r.1).collect()) / dispatches;
        let gpu_part = match runs.iter().map(|r| r.0).collect::<Option<Vec<f64>>>() {
            Some(v) => {
                let t = median(v) / dispatches;
                format!("{:9.1} µs {:7.2} {unit}", t * 1e6, work / t / 1e12)
            }
            None => "(no timestamps)".into(),
        };
        let label = if staging_only { "  its staging alone".to_string() } else { label.clone() };
        println!(
            "| {:<18} | {:>5}x{:<5} | {n_tokens:>4} | {gpu_part} | {:9.1} µs {:7.2} {unit} | {nmse:.1e} |",
            label,
            rows,
            cols,
            wall * 1e6,
            work / wall / 1e12,
        );
    }
}

/// The adapter's cooperative-matrix configurations, as wgpu reports them.
fn print_coop_properties() {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::PRIMARY;
    let instance = wgpu::Instance::new(desc);
    let Ok(adapter) = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    })) else {
        return;
    };
    let has = adapter.features().contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);
    println!("EXPERIMENTAL_COOPERATIVE_MATRIX offered: {has}");
    for c in adapter.cooperative_matrix_properties() {
        println!("  coop config: {c:?}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cases: Vec<(GgmlType, usize, usize)> = if args.is_empty() {
        vec![
            (GgmlType::Q4K, 4096, 4096),
            (GgmlType::Q4K, 14336, 4096),
            (GgmlType::Q4K, 4096, 14336),
            (GgmlType::Q8_0, 4096, 4096),
            (GgmlType::Q6K, 4096, 4096),
            (GgmlType::F16, 4096, 4096),
        ]
    } else {
        args.iter().map(|a| parse_case(a)).collect()
    };
    let list = |var: &str| -> Vec<u32> {
        std::env::var(var).unwrap_or_default().split(',').filter_map(|v| v.trim().parse().ok()).collect()
    };
    let mut token_counts = list("AETHER_MATMUL_TOKENS");
    if token_counts.is_empty() {
        token_counts.push(512);
    }
    print_coop_properties();
    let open = |split_target| {
        pollster::block_on(Gpu::new(GpuOptions { split_target, ..Default::default() })).expect("adapter")
    };
    let mut targets: Vec<Option<u32>> = list("AETHER_SPLIT_TARGETS").into_iter().map(Some).collect();
    if targets.is_empty() {
        targets.push(None);
    }
    let bests: Vec<Gpu> = targets.iter().map(|&t| open(t)).collect();
    let best = &bests[0];
    println!("adapter: {}; split targets {targets:?}", best.describe());
    let portable = best.caps().coop_matrix.then(|| {
        pollster::block_on(Gpu::new(GpuOptions { no_coop_matrix: true, ..Default::default() }))
            .expect("adapter")
    });
    println!(
        "{COPIES} copies x {ROUNDS} rounds per pass, median of {REPS} passes; FLOP = 2·rows·cols·tokens"
    );
    println!(
        "| kernel | rows x cols | tokens | GPU time / dispatch | wall / dispatch | NMSE vs CPU (8 tokens) |"
    );
    println!("|---|---|---|---|---|---|");
    let skip_portable = std::env::var_os("AETHER_MATMUL_NO_F32").is_some();
    // Kernel variants from files, each timed beside the built-in kernel (labelled by file stem).
    let variants: Vec<(String, String)> = std::env::var("AETHER_MATMUL_FILES")
        .unwrap_or_default()
        .split(',')
        .filter(|f| !f.is_empty())
        .map(|f| {
            let label = std::path::Path::new(f).file_stem().unwrap().to_string_lossy().replace('-', "_");
            (label, std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{f}: {e}")))
        })
        .collect();
    for &(ty, rows, cols) in &cases {
        let bytes = weights(ty, rows, cols, false, &mut Rng::new(42));
        for &n_tokens in &token_counts {
            let case = Operands::new(ty, rows, cols, n_tokens as usize, bytes.clone());
            for gpu in &bests {
                bench(gpu, &case, None);
            }
            for (label, source) in &variants {
                bench(best, &case, Some((label, source)));
            }
            if let Some(g) = portable.as_ref().filter(|_| !skip_portable) {
                bench(g, &case, None);
            }
        }
    }
}
