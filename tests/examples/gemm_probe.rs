//! Times tensor-core GEMM kernel files on plain f16 operands, to compare tile structures before
//! one becomes a kernel of the engine (`shaders/gemm_coop.wgsl` came from this). A program, not a
//! test:
//!
//!     python3 tests/scripts/gemm_variants.py DIR    # writes the variant kernels
//!     cargo run --release -p aether-tests --example gemm_probe -- DIR/s24_4x2.wgsl ...
//!
//! A kernel computes Y[t, r] = Σ_k A[r, k] · X[t, k] with A f16 [M, K] (binding 0), X [N, K]
//! (binding 1: f16, or f32 where the file declares `x: array<f32>` or `array<vec4<f32>>`), Y f32
//! [N, M] (binding 2) and a uniform {m, k, n, _} (binding 3); its `const TM` and `const TN` give
//! the workgroup tile; M and N must be multiples of them. Shapes: `AETHER_GEMM_SHAPES=MxKxN,...`
//! (default: llama3-8b's projections at 512 tokens). GPU time from timestamp queries: 4 copies of
//! A × 5 rounds per pass, median of 7 passes; the largest relative error of 64 entries against an
//! f64 sum of the same f16 operands is printed beside it.
use std::time::Instant;

use aether_core::gpu::{Gpu, GpuOptions};
use half::f16;

const COPIES: usize = 4;
const ROUNDS: usize = 5;
const REPS: usize = 7;

fn const_of(src: &str, name: &str) -> u32 {
    let pat = format!("const {name}: u32 = ");
    let at = src.find(&pat).unwrap_or_else(|| panic!("no const {name}")) + pat.len();
    src[at..].split('u').next().unwrap().parse().unwrap()
}

struct Rng(u64);
impl Rng {
    fn f(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    let shapes: Vec<(u32, u32, u32)> = std::env::var("AETHER_GEMM_SHAPES")
        .unwrap_or("4096x4096x512,14336x4096x512,4096x14336x512,28672x4096x512,6144x4096x512".into())
        .split(',')
        .map(|s| {
            let v: Vec<u32> = s.split('x').map(|d| d.parse().unwrap()).collect();
            (v[0], v[1], v[2])
        })
        .collect();
    let gpu = pollster::block_on(Gpu::new(GpuOptions::default())).expect("gpu");
    println!("adapter: {}", gpu.describe());
    let dev = gpu.device();
    let q = dev.create_query_set(&wgpu::QuerySetDescriptor {
        label: None,
        ty: wgpu::QueryType::Timestamp,
        count: 2,
    });
    let mk = |size, usage| {
        dev.create_buffer(&wgpu::BufferDescriptor { label: None, size, usage, mapped_at_creation: false })
    };
    let resolve = mk(16, wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC);
    let read = mk(16, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
    let kernels: Vec<(String, wgpu::ComputePipeline, u32, u32, bool)> = files
        .iter()
        .map(|f| {
            let src = std::fs::read_to_string(f).unwrap();
            let scope = gpu.error_scope();
            let module = dev.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(f),
                source: wgpu::ShaderSource::Wgsl(src.clone().into()),
            });
            let p = dev.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(f),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
            pollster::block_on(scope.finish(&gpu, f)).expect("kernel builds");
            let stem = std::path::Path::new(f).file_stem().unwrap().to_string_lossy().to_string();
            let xf32 = src.contains("x: array<f32>") || src.contains("x: array<vec4<f32>>");
            (stem, p, const_of(&src, "TM"), const_of(&src, "TN"), xf32)
        })
        .collect();
    println!("| kernel | M x K x N | GPU µs | TFLOP/s | max rel err |");
    println!("|---|---|---|---|---|");
    for &(m, k, n) in &shapes {
        let mut rng = Rng(0x9e3779b97f4a7c15);
        let av: Vec<f16> = (0..(m * k) as usize).map(|_| f16::from_f32(rng.f())).collect();
        let xv: Vec<f16> = (0..(n * k) as usize).map(|_| f16::from_f32(rng.f())).collect();
        let storage =
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
        let abufs: Vec<wgpu::Buffer> = (0..COPIES)
            .map(|_| {
                let b = mk((m * k * 2) as u64, storage);
                gpu.queue().write_buffer(
                    &b,
                    0,
                    bytemuck::cast_slice(&av.iter().map(|h| h.to_bits()).collect::<Vec<u16>>()),
                );
                b
            })
            .collect();
        let xb = mk((n * k * 2) as u64, storage);
        gpu.queue().write_buffer(
            &xb,
            0,
            bytemuck::cast_slice(&xv.iter().map(|h| h.to_bits()).collect::<Vec<u16>>()),
        );
        let xb32 = mk((n * k * 4) as u64, storage);
        gpu.queue().write_buffer(
            &xb32,
            0,
            bytemuck::cast_slice(&xv.iter().map(|h| h.to_f32()).collect::<Vec<f32>>()),
        );
        let yb = mk((n * m * 4) as u64, storage);
        let yread = mk((n * m * 4) as u64, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
        let ub = mk(16, wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST);
        gpu.queue().write_buffer(&ub, 0, bytemuck::cast_slice(&[m, k, n, 0u32]));
        // Reference for a few entries.
        let probes: Vec<(u32, u32)> = (0..64).map(|i| ((i * 7919 + 13) % n, (i * 104729 + 5) % m)).collect();
        let want: Vec<f64> = probes
            .iter()
            .map(|&(t, r)| {
                (0..k as usize)
                    .map(|c| {
                        av[r as usize * k as usize + c].to_f64() * xv[t as usize * k as usize + c].to_f64()
                    })
                    .sum()
            })
            .collect();
        for (name, pipe, tm, tn, xf32) in &kernels {
            let xb = if *xf32 { &xb32 } else { &xb };
            let bgs: Vec<wgpu::BindGroup> = abufs
                .iter()
                .map(|a| {
                    dev.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: None,
                        layout: &pipe.get_bind_group_layout(0),
                        entries: &[
                            wgpu::BindGroupEntry { binding: 0, resource: a.as_entire_binding() },
                            wgpu::BindGroupEntry { binding: 1, resource: xb.as_entire_binding() },
                            wgpu::BindGroupEntry { binding: 2, resource: yb.as_entire_binding() },
                            wgpu::BindGroupEntry { binding: 3, resource: ub.as_entire_binding() },
                        ],
                    })
                })
                .collect();
            let pass = |timed: bool| -> f64 {
                let mut enc = dev.create_command_encoder(&Default::default());
                {
                    let tw = wgpu::ComputePassTimestampWrites {
                        query_set: &q,
                        beginning_of_pass_write_index: Some(0),
                        end_of_pass_write_index: Some(1),
                    };
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: None,
                        timestamp_writes: timed.then_some(tw),
                    });
                    pass.set_pipeline(pipe);
                    for _ in 0..if timed { ROUNDS } else { 1 } {
                        for bg in &bgs[..if timed { COPIES } else { 1 }] {
                            pass.set_bind_group(0, bg, &[]);
                            pass.dispatch_workgroups(m.div_ceil(*tm), n.div_ceil(*tn), 1);
                        }
                    }
                }
                if timed {
                    enc.resolve_query_set(&q, 0..2, &resolve, 0);
                    enc.copy_buffer_to_buffer(&resolve, 0, &read, 0, 16);
                }
                let t0 = Instant::now();
                gpu.submit(enc, "probe").unwrap();
                dev.poll(wgpu::PollType::wait_indefinitely()).unwrap();
                if !timed {
                    return t0.elapsed().as_secs_f64();
                }
                let s = read.slice(..);
                s.map_async(wgpu::MapMode::Read, |r| r.unwrap());
                dev.poll(wgpu::PollType::wait_indefinitely()).unwrap();
                let t: Vec<u64> = s
                    .get_mapped_range()
                    .unwrap()
                    .as_chunks::<8>()
                    .0
                    .iter()
                    .map(|b| u64::from_le_bytes(*b))
                    .collect();
                read.unmap();
                (t[1] - t[0]) as f64 * gpu.queue().get_timestamp_period() as f64 * 1e-9
                    / (COPIES * ROUNDS) as f64
            };
            pass(false);
            let mut enc = dev.create_command_encoder(&Default::default());
            enc.copy_buffer_to_buffer(&yb, 0, &yread, 0, (n * m * 4) as u64);
            gpu.submit(enc, "copy").unwrap();
            let s = yread.slice(..);
            s.map_async(wgpu::MapMode::Read, |r| r.unwrap());
            dev.poll(wgpu::PollType::wait_indefinitely()).unwrap();
            let err = {
                let v = s.get_mapped_range().unwrap();
                let y: &[f32] = bytemuck::cast_slice(&v);
                probes
                    .iter()
                    .zip(&want)
                    .map(|(&(t, r), w)| {
                        let g = y[(t * m + r) as usize] as f64;
                        if g.is_nan() { f64::INFINITY } else { (g - w).abs() / (w.abs() + 1.0) }
                    })
                    .fold(0.0f64, f64::max)
            };
            yread.unmap();
            gpu.queue().write_buffer(&ub, 0, bytemuck::cast_slice(&[m, k, n, 0u32]));
            let mut ts: Vec<f64> = (0..REPS).map(|_| pass(true)).collect();
            ts.sort_by(f64::total_cmp);
            let t = ts[REPS / 2];
            println!(
                "| {name} | {m}x{k}x{n} | {:.1} | {:.1} | {err:.1e} |",
                t * 1e6,
                2.0 * m as f64 * k as f64 * n as f64 / t / 1e12
            );
            gpu.check("probe").expect("no GPU error");
        }
    }
}
