//! Times the mat-vec kernels on this machine's adapter and prints GB/s of weights read. A program,
//! not a timed test:
//!
//!     cargo run --release -p aether-tests --example gpu_matvec_bench [-- TYPE:ROWSxCOLS[xTOKENS] ...]
//!
//! A case with TOKENS > 1 (`Q4_K:4096x4096x8`) times the product for that many tokens (batched
//! decode): the mat-vec over a few tokens (`matvec_multi_*`) and, for comparison, the tiled
//! matmul; GB/s counts the weights once per dispatch, so the two compare directly with each other
//! and with the one-token mat-vec. `AETHER_MULTI_SHAPES=64x2x8,128x1x16` also times the multi
//! kernel with those workgroup sizes, rows per workgroup and tokens per group (tuning).
//!
//! Default cases: Q4_K 14336x4096 and 4096x14336 (llama3-8b's ffn_gate/up and ffn_down), Q8_0
//! and Q6_K 4096x14336. For each, both kernel variants (`_sg` when the adapter has subgroups, and
//! `_wg`). Method: the weights are uploaded to COPIES distinct buffers (together larger than an
//! H100's 50 MB L2, so each dispatch streams from memory); one compute pass runs ROUNDS rounds
//! over all copies; the pass is timed with timestamp queries when the adapter has them (GPU time)
//! and with the wall clock from submit to completion (always). Median of REPS passes after a
//! warm-up. Before timing, the result of the first copy is checked against the CPU twin.
//!
//! `AETHER_MATVEC_SHAPES=64x2,128x4` also times each case with those workgroup sizes and rows
//! per workgroup in place of the kernel's own (tuning). `AETHER_MATVEC_FILES=dir/matvec_q8_0.a.wgsl,
//! dir/matvec_q8_0.b.wgsl@128` also times kernel variants read from those files (each whole, up to
//! its reduce line, for the type its name starts with; `@WG` sets its workgroup size): trying a
//! kernel change on a machine without rebuilding. A variant that fails to build or to match the
//! CPU is reported and skipped.
//!
//! First it measures the roofline the same way: a 1 GiB buffer read as vec4<u32> by a
//! grid-stride loop (the method of `../shared/ANCHORS.md`), 20 passes, median.

use std::time::Instant;

use aether_core::gpu::{
    Gpu, GpuOptions, GpuTensor, MatMul, MatVec, MatVecMulti, MultiShape, Step, StepBuffer, act_pack_cpu,
    act_quant_cpu, matmul_cpu, packed_input,
};
use aether_core::quant::GgmlType;
use aether_tests::gpu::{Rng, assert_nmse, weights};

const COPIES: usize = 8;
const ROUNDS: usize = 25;
const REPS: usize = 9;

/// `TYPE:ROWSxCOLS` or `TYPE:ROWSxCOLSxTOKENS`.
fn parse_case(s: &str) -> (GgmlType, usize, usize, usize) {
    let (ty, shape) = s.split_once(':').expect("TYPE:ROWSxCOLS[xTOKENS]");
    let ty = GgmlType::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(ty)).expect("known type");
    let dims: Vec<usize> = shape.split('x').map(|d| d.parse().expect("a number")).collect();
    match dims[..] {
        [r, c] => (ty, r, c, 1),
        [r, c, t] => (ty, r, c, t.max(1)),
        _ => panic!("TYPE:ROWSxCOLS[xTOKENS], got {s}"),
    }
}

/// Which kernel a bench row times.
#[derive(Clone)]
enum Kernel {
    /// The one-token mat-vec, optionally with (workgroup size, rows per workgroup).
    Vec(Option<(u32, u32)>),
    /// The one-token mat-vec from a kernel file (path, label, workgroup size).
    File(String, String, Option<u32>),
    /// The mat-vec over a few tokens, optionally with a geometry of its own.
    Multi(Option<MultiShape>),
    Mat,
}

enum Op {
    Vec(MatVec),
    Multi(MatVecMulti),
    Mat(MatMul),
}

impl Op {
    fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_tokens: u32) {
        match self {
            Op::Vec(op) => op.encode(pass),
            Op::Multi(op) => op.encode(pass, n_tokens),
            Op::Mat(op) => op.encode(pass, n_tokens),
        }
    }

    fn key(&self, n_tokens: u32) -> String {
        match self {
            Op::Vec(op) => op.key().to_string(),
            Op::Multi(op) => op.key(n_tokens).to_string(),
            Op::Mat(op) => op.key().to_string(),
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Timing {
    gpu_s: Option<f64>,
    wall_s: f64,
}

fn time_pass(
    gpu: &Gpu,
    ops: &[Op],
    n_tokens: u32,
    query: Option<(&wgpu::QuerySet, &wgpu::Buffer, &wgpu::Buffer)>,
) -> Timing {
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
                op.encode(&mut pass, n_tokens);
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
    let wall_s = t0.elapsed().as_secs_f64();
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
    Timing { gpu_s, wall_s }
}

fn bench(gpu: &Gpu, ty: GgmlType, rows: usize, cols: usize, n_tokens: usize, kernel: Kernel) {
    let mut rng = Rng::new(42);
    let bytes = weights(ty, rows, cols, true, &mut rng);
    let mut x = rng.vec(n_tokens * cols);
    // The packed-input kernels read the CPU's quantization of x; their twin the same levels. The
    // matmul reads it back in f32, as the forward pass gives it.
    let packed = packed_input(ty) && !matches!(kernel, Kernel::Mat);
    let words: Vec<u32> = if packed {
        let packed = act_pack_cpu(ty, &x, cols).expect("pack");
        x = act_quant_cpu(ty, &x).expect("quantize");
        packed
    } else {
        if packed_input(ty) {
            x = act_quant_cpu(ty, &x).expect("quantize");
        }
        x.iter().map(|v| v.to_bits()).collect()
    };
    let dev = gpu.device();
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
    let xb = dev.create_buffer(&wgpu::BufferDescriptor {
        label: Some("x"),
        size: (words.len() * 4) as u64,
        usage,
        mapped_at_creation: false,
    });
    gpu.queue().write_buffer(&xb, 0, bytemuck::cast_slice(&words));
    let tensors: Vec<GpuTensor> = (0..COPIES)
        .map(|i| {
            GpuTensor::upload(gpu, &format!("w{i}"), ty, cols as u64, rows as u64, &bytes, &mut |_, _| {})
                .expect("upload")
        })
        .collect();
    let ys: Vec<wgpu::Buffer> = (0..COPIES)
        .map(|_| {
            dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some("y"),
                size: (n_tokens * rows * 4) as u64,
                usage,
                mapped_at_creation: false,
            })
        })
        .collect();
    let step = StepBuffer::new(gpu).expect("step");
    let n = n_tokens as u32;
    step.write(gpu, Step::new(0, n));
    let ops: Vec<Op> = tensors
        .iter()
        .zip(&ys)
        .map(|(w, y)| match &kernel {
            Kernel::Vec(Some((wg, r))) => MatVec::with_shape(gpu, w, &xb, y, *wg, *r).map(Op::Vec),
            Kernel::Vec(None) => MatVec::new(gpu, w, &xb, 0, y, 0).map(Op::Vec),
            Kernel::File(path, label, wg) => {
                let source = std::fs::read_to_string(path).expect("kernel file");
                MatVec::with_source(gpu, w, &xb, y, label, &source, *wg).map(Op::Vec)
            }
            Kernel::Multi(Some(shape)) => {
                MatVecMulti::with_shape(gpu, w, &xb, y, &step, n, shape.clone()).map(Op::Multi)
            }
            Kernel::Multi(None) => MatVecMulti::new(gpu, w, &xb, 0, y, 0, &step, n).map(Op::Multi),
            Kernel::Mat => MatMul::new(gpu, w, &xb, 0, y, 0, &step, n).map(Op::Mat),
        })
        .map(|m| m.expect("kernel"))
        .collect();
    let key = ops[0].key(n);

    // Correctness on this adapter first.
    time_pass(gpu, &ops[..1], n, None);
    let got = pollster::block_on(gpu.read_f32(&ys[0], 0, n_tokens * rows)).expect("read y");
    let want = matmul_cpu(ty, &bytes, &x, n_tokens, cols).expect("cpu");
    let nmse = assert_nmse(&got, &want, 5e-4, &format!("{key} {rows}x{cols}x{n_tokens}"));

    let query = gpu.caps().timestamps.then(|| {
        let q = dev.create_query_set(&wgpu::QuerySetDescriptor {
            label: None,
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
        let resolve = dev.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: 16,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let read = dev.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        (q, resolve, read)
    });
    let query = query.as_ref().map(|(q, r, b)| (q, r, b));
    time_pass(gpu, &ops, n, query); // warm-up
    let runs: Vec<Timing> = (0..REPS).map(|_| time_pass(gpu, &ops, n, query)).collect();
    let dispatches = (COPIES * ROUNDS) as f64;
    let weight_bytes = tensors[0].gpu_bytes() as f64;
    let wall = median(runs.iter().map(|t| t.wall_s).collect()) / dispatches;
    let gb = |s: f64| weight_bytes / s / 1e9;
    let gpu_part = match runs.iter().map(|t| t.gpu_s).collect::<Option<Vec<f64>>>() {
        Some(v) => {
            let t = median(v) / dispatches;
            format!("{:8.2} µs {:8.1} GB/s", t * 1e6, gb(t))
        }
        None => "       (no timestamps)".to_string(),
    };
    println!(
        "| {:<28} | {:>5}x{:<5}x{:<3} | {:>7.2} MB | {gpu_part} | {:8.2} µs {:8.1} GB/s | {nmse:.1e} |",
        key,
        rows,
        cols,
        n_tokens,
        weight_bytes / 1e6,
        wall * 1e6,
        gb(wall),
    );
}

/// Streaming read: every invocation sums its grid-stride share of `src` and writes one word.
const STREAM_WGSL: &str = "
@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let stride = nwg.x * 256u;
    var acc = vec4<u32>(0u);
    for (var i = gid.x; i < arrayLength(&src); i += stride) {
        acc ^= src[i];
    }
    dst[gid.x] = acc.x ^ acc.y ^ acc.z ^ acc.w;
}
";

fn roofline(gpu: &Gpu) {
    const BYTES: u64 = 1 << 30;
    const GROUPS: u32 = 132 * 16;
    let dev = gpu.device();
    let bytes = BYTES.min(gpu.caps().max_storage_binding);
    let usage = wgpu::BufferUsages::STORAGE;
    let src = dev.create_buffer(&wgpu::BufferDescriptor {
        label: Some("src"),
        size: bytes,
        usage,
        mapped_at_creation: false,
    });
    let dst = dev.create_buffer(&wgpu::BufferDescriptor {
        label: Some("dst"),
        size: GROUPS as u64 * 256 * 4,
        usage,
        mapped_at_creation: false,
    });
    let module = dev.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("stream"),
        source: wgpu::ShaderSource::Wgsl(STREAM_WGSL.into()),
    });
    let pipeline = dev.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("stream"),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let bind = dev.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: src.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: dst.as_entire_binding() },
        ],
    });
    let mut times = Vec::new();
    for i in 0..21 {
        let mut enc = dev.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            for _ in 0..10 {
                pass.dispatch_workgroups(GROUPS, 1, 1);
            }
        }
        let t0 = Instant::now();
        gpu.submit(enc, "stream").expect("submit");
        dev.poll(wgpu::PollType::wait_indefinitely()).expect("poll");
        if i > 0 {
            times.push(t0.elapsed().as_secs_f64() / 10.0);
        }
    }
    let t = median(times);
    println!(
        "roofline: streaming read of {} MiB: {:.1} µs, {:.0} GB/s (wall, 10 dispatches per pass)",
        bytes >> 20,
        t * 1e6,
        bytes as f64 / t / 1e9
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cases: Vec<(GgmlType, usize, usize, usize)> = if args.is_empty() {
        vec![
            (GgmlType::Q4K, 14336, 4096, 1),
            (GgmlType::Q4K, 4096, 14336, 1),
            (GgmlType::Q5K, 4096, 14336, 1),
            (GgmlType::Q6K, 4096, 14336, 1),
            (GgmlType::Q8_0, 4096, 14336, 1),
            (GgmlType::Q4_0, 4096, 14336, 1),
            (GgmlType::F16, 4096, 4096, 1),
        ]
    } else {
        args.iter().map(|a| parse_case(a)).collect()
    };
    let best = pollster::block_on(Gpu::new(GpuOptions::default())).expect("adapter");
    println!("adapter: {}", best.describe());
    println!("info: {:?}", best.info());
    println!("features: {:?}", best.device().features());
    println!("limits: {:?}", best.device().limits());
    roofline(&best);
    println!(
        "{COPIES} copies x {ROUNDS} rounds per pass, median of {REPS} passes; GB/s = weight bytes / time per dispatch"
    );
    println!(
        "| kernel | rows x cols x tokens | weights | GPU time / dispatch | wall / dispatch | NMSE vs CPU |"
    );
    println!("|---|---|---|---|---|---|");
    let portable = best.caps().subgroups.then(|| {
        pollster::block_on(Gpu::new(GpuOptions { no_subgroups: true, ..Default::default() }))
            .expect("adapter")
    });
    let shapes: Vec<(u32, u32)> = std::env::var("AETHER_MATVEC_SHAPES")
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| {
            let (a, b) = s.split_once('x')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect();
    let multi_shapes: Vec<MultiShape> = std::env::var("AETHER_MULTI_SHAPES")
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| {
            let d: Vec<u32> = s.split('x').map(|d| d.parse().ok()).collect::<Option<_>>()?;
            match d[..] {
                [wg, rows, nt] => Some(MultiShape { wg, rows, tokens: vec![nt] }),
                _ => None,
            }
        })
        .collect();
    // (path, label, workgroup size) of each kernel variant file, with the stem it is for.
    let files: Vec<(String, String, String, Option<u32>)> = std::env::var("AETHER_MATVEC_FILES")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (path, wg) = match s.rsplit_once('@') {
                Some((path, wg)) => (path, wg.parse().ok()),
                None => (s, None),
            };
            let name = path.rsplit('/').next().unwrap_or(path).trim_end_matches(".wgsl");
            let (stem, label) = name.split_once('.').unwrap_or((name, "file"));
            (stem.to_string(), path.to_string(), label.to_string(), wg)
        })
        .collect();
    for &(ty, rows, cols, n_tokens) in &cases {
        let mut kernels = Vec::new();
        if n_tokens == 1 {
            kernels.push(Kernel::Vec(None));
            kernels.extend(shapes.iter().map(|&s| Kernel::Vec(Some(s))));
            let stem = format!("matvec_{}", ty.name().to_lowercase());
            kernels.extend(
                files
                    .iter()
                    .filter(|f| f.0 == stem)
                    .map(|(_, path, label, wg)| Kernel::File(path.clone(), label.clone(), *wg)),
            );
        } else {
            kernels.push(Kernel::Multi(None));
            kernels.extend(multi_shapes.iter().map(|s| Kernel::Multi(Some(s.clone()))));
            kernels.push(Kernel::Mat);
        }
        for k in kernels {
            if matches!(k, Kernel::File(..)) {
                // A variant under trial may not build or may be wrong: report it, go on.
                let run = std::panic::AssertUnwindSafe(|| bench(&best, ty, rows, cols, n_tokens, k.clone()));
                if std::panic::catch_unwind(run).is_err() {
                    println!("(variant failed, see above)");
                }
            } else {
                bench(&best, ty, rows, cols, n_tokens, k);
            }
        }
        if let Some(g) = &portable {
            let k = if n_tokens == 1 { Kernel::Vec(None) } else { Kernel::Multi(None) };
            bench(g, ty, rows, cols, n_tokens, k);
        }
    }
}
