//! Exact numerics (`GpuOptions::exact`): each kernel against the CPU reference, bit for bit, on
//! whatever adapter this machine has (lavapipe in CI). The kernels emulate a fused multiply-add
//! and f64 sums with error-free transformations (`shaders/exact_fp.wgsl`), so these tests catch
//! an adapter whose compiler rewrites them as well as a kernel off by one ulp.
//!
//! No adapter = failure, unless `AETHER_NO_GPU=1` (see `aether_tests::gpu`).

use aether_core::Error;
use aether_core::cpu::attention::{attn_probs, attn_values};
use aether_core::cpu::expf_ggml;
use aether_core::cpu::ops::{RopeFreqs, rmsnorm, rope, rope_angles, swiglu};
use aether_core::gpu::{
    ActQuant, Attention, AttnDims, Gpu, GpuOptions, GpuTensor, MatVec, RopeKv, RopeKvDims, Step, StepBuffer,
    StepPlan, StepTable, act_pack_cpu, act_quant_cpu, exact_angles, packed_stride,
};
use aether_core::model::RopeKind;
use aether_core::quant::{self, GgmlType};
use aether_tests::gpu::{Rng, buffer, read_all_f32, read_all_u32, run_step, test_gpu, weights};
use half::f16;

fn exact_gpu() -> Option<Gpu> {
    test_gpu(GpuOptions { exact: true, ..Default::default() })
}

/// The first index where `got` and `want` differ in their bits, with both values.
fn first_difference(got: &[f32], want: &[f32]) -> Option<(usize, f32, f32)> {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .enumerate()
        .find(|(_, (g, w))| g.to_bits() != w.to_bits())
        .map(|(i, (g, w))| (i, *g, *w))
}

/// exact_fp.wgsl's functions in a harness kernel, 4 results per (x, y, z): fma_exact(x, y, z),
/// exp_ggml(30x), SiLU of 30x (div_exact of it by 1 + e^-30x) and 1 / sqrt_exact(|z| + 1e-5).
const FP_HARNESS: &str = r#"
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> o: array<u32>;
@group(0) @binding(2) var<storage, read> zero: array<u32>;
fn zero_bits() -> u32 { return zero[0]; }
// include: exact_fp.wgsl
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
    let i = g.x;
    if i >= arrayLength(&a) / 3u { return; }
    let x = a[3u * i];
    let y = a[3u * i + 1u];
    let z = a[3u * i + 2u];
    let s = 30.0 * x;
    o[4u * i] = bitcast<u32>(fma_exact(x, y, z));
    o[4u * i + 1u] = bitcast<u32>(exp_ggml(s));
    o[4u * i + 2u] = bitcast<u32>(div_exact(s, 1.0 + exp_ggml(0.0 - s)));
    o[4u * i + 3u] = bitcast<u32>(div_exact(1.0, sqrt_exact(abs(z) + 1e-5)));
}
"#;

/// The arithmetic the exact kernels build on, against the CPU's on 300,000 random triples: a
/// fused multiply-add, ggml's exp (every range, its overflow and saturation), SiLU's quotient and
/// the norm's 1/√ — WGSL's own fma, division and sqrt differ from them (lavapipe and SwiftShader
/// round fma twice, NVIDIA divides and takes roots to 1-2 ulp). Results the CPU gives as
/// subnormals may come back as zeros (software adapters flush them).
#[test]
fn the_exact_arithmetic_is_the_cpus_bit_for_bit() {
    let Some(gpu) = exact_gpu() else { return };
    let src = aether_core::gpu::shaders::with_includes(FP_HARNESS);
    let n = 300_000usize;
    let mut rng = Rng::new(0xf9a);
    let a: Vec<f32> = rng.vec(3 * n).iter().map(|v| v * 4.0).collect();
    let (ab, ob, zb) =
        (buffer(&gpu, "a", &a), buffer(&gpu, "o", &vec![0u32; 4 * n]), buffer(&gpu, "zero", &[0u32; 4]));
    let dev = gpu.device();
    let module = dev.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: None,
        source: wgpu::ShaderSource::Wgsl(src.into()),
    });
    let pipeline = dev.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: None,
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let entries: Vec<_> = [&ab, &ob, &zb]
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
        .collect();
    let bind = dev.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    });
    let mut enc = dev.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups((n as u32).div_ceil(64), 1, 1);
    }
    gpu.submit(enc, "exact arithmetic").unwrap();
    let o = read_all_u32(&gpu, &ob);
    let names = ["fma_exact", "exp_ggml", "SiLU's div_exact", "1 / sqrt_exact"];
    let mut failures = Vec::new();
    for i in 0..n {
        let (x, y, z) = (a[3 * i], a[3 * i + 1], a[3 * i + 2]);
        let s = 30.0 * x;
        let want =
            [x.mul_add(y, z), expf_ggml(s), s / (1.0 + expf_ggml(0.0 - s)), 1.0 / (z.abs() + 1e-5).sqrt()];
        for (k, w) in want.iter().enumerate() {
            let g = f32::from_bits(o[4 * i + k]);
            let flushed = w.abs() < f32::MIN_POSITIVE && g.abs() < f32::MIN_POSITIVE;
            if g.to_bits() != w.to_bits() && !flushed && failures.len() < 8 {
                failures.push(format!("{}({x:e}, {y:e}, {z:e}) = {g:e}, CPU {w:e}", names[k]));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_exact_matvec_is_the_cpus_dot_product_bit_for_bit() {
    let Some(gpu) = exact_gpu() else { return };
    eprintln!("adapter: {}", gpu.describe());
    let mut rng = Rng::new(0xe4ac7);
    let mut failures = Vec::new();
    use GgmlType::*;
    for ty in [Q4_1, Q8_0, Q4_0] {
        // Odd block counts put Q8_0 and Q4_0 rows on 2-byte boundaries; 65 rows span two workgroups.
        for (rows, cols) in [(1, 32), (7, 96), (65, 576), (3, 1536 + 32)] {
            for raw in [false, true] {
                let what = format!("{ty} rows={rows} cols={cols} raw={raw}");
                let bytes = weights(ty, rows, cols, raw, &mut rng);
                // Activations with a few large values, as a residual stream has.
                let mut x: Vec<f32> = rng.vec(cols).iter().map(|v| v * 3.0).collect();
                x[cols / 3] = 41.5;
                let mut acts = Vec::new();
                quant::quantize_activations(ty, &x, &mut acts).unwrap();
                let rb = bytes.len() / rows;
                let dots: Vec<f32> =
                    bytes.chunks(rb).map(|row| quant::dot_quantized(ty, row, &acts).unwrap()).collect();
                let w = GpuTensor::upload(&gpu, "w", ty, cols as u64, rows as u64, &bytes, &mut |_, _| {})
                    .unwrap();
                let xb = buffer(&gpu, "x", &[vec![0u32; 4], act_pack_cpu(ty, &x, cols).unwrap()].concat());
                for add in [false, true] {
                    let y0: Vec<f32> = (0..rows + 2).map(|i| i as f32 * 0.37 - 1.0).collect();
                    let yb = buffer(&gpu, "y", &y0);
                    let mv = match add {
                        false => MatVec::new(&gpu, &w, &xb, 4, &yb, 1),
                        true => MatVec::new_add(&gpu, &w, &xb, 4, &yb, 1),
                    }
                    .unwrap();
                    assert!(mv.key().starts_with("exact_matvec_"), "{}", mv.key());
                    let mut enc = gpu.device().create_command_encoder(&Default::default());
                    mv.encode(&mut enc.begin_compute_pass(&Default::default()));
                    gpu.submit(enc, "exact mat-vec").unwrap();
                    let y = read_all_f32(&gpu, &yb);
                    let want: Vec<f32> = std::iter::once(y0[0])
                        .chain(dots.iter().zip(&y0[1..]).map(|(&d, &y)| if add { y + d } else { d }))
                        .chain(std::iter::once(y0[rows + 1]))
                        .collect();
                    if let Some((i, g, w)) = first_difference(&y, &want) {
                        failures.push(format!(
                            "{what} add={add}: y[{i}] = {g:e} ({:#x}), CPU {w:e} ({:#x})",
                            g.to_bits(),
                            w.to_bits()
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn exact_numerics_refuse_a_type_they_do_not_cover() {
    let Some(gpu) = exact_gpu() else { return };
    let mut rng = Rng::new(1);
    let bytes = weights(GgmlType::Q4K, 2, 256, false, &mut rng);
    let w = GpuTensor::upload(&gpu, "w", GgmlType::Q4K, 256, 2, &bytes, &mut |_, _| {}).unwrap();
    let (x, y) = (buffer(&gpu, "x", &[0u32; 128]), buffer(&gpu, "y", &[0f32; 4]));
    match MatVec::new(&gpu, &w, &x, 0, &y, 0) {
        Err(Error::ExactUnsupported { what }) => assert!(what.to_lowercase().contains("q4_k"), "{what}"),
        Err(e) => panic!("expected ExactUnsupported, got {e}"),
        Ok(_) => panic!("a Q4_K mat-vec under exact numerics"),
    }
}

/// Runs `k` over `n` rows and checks its f32 output and packed levels against the CPU's
/// quantization of `want_x` (the CPU's own norm or GLU of the input), bit for bit.
fn check_conversion(
    gpu: &Gpu,
    step: &StepBuffer,
    what: &str,
    ty: GgmlType,
    (k, yb, qb): (ActQuant, wgpu::Buffer, wgpu::Buffer),
    want_x: &[f32],
    cols: usize,
) -> Vec<String> {
    let n = want_x.len() / cols;
    run_step(gpu, step, Step::new(0, n as u32), |p| k.encode(p, n as u32)).unwrap();
    let mut failures = Vec::new();
    let want_y = act_quant_cpu(ty, want_x).unwrap();
    // A zero level may come out as −0 in f32 (the packed level is 0 either way).
    let gy: Vec<f32> = read_all_f32(gpu, &yb).iter().map(|&v| if v == 0.0 { 0.0 } else { v }).collect();
    if let Some((i, g, w)) = first_difference(&gy, &want_y) {
        failures.push(format!("{what}: y[{i}] = {g:e}, CPU {w:e}"));
    }
    let (got, want) = (read_all_u32(gpu, &qb), act_pack_cpu(ty, want_x, cols).unwrap());
    let stride = packed_stride(cols as u32) as usize;
    let used = cols / 4 + cols / 32;
    for t in 0..n {
        let (g, w) = (&got[t * stride..][..used], &want[t * stride..][..used]);
        if let Some(i) = g.iter().zip(w).position(|(a, b)| a != b) {
            failures.push(format!("{what}: token {t} packed word {i} = {:#010x}, CPU {:#010x}", g[i], w[i]));
        }
    }
    failures
}

#[test]
fn the_exact_norm_and_silu_conversions_are_the_cpus_bit_for_bit() {
    let Some(gpu) = exact_gpu() else { return };
    let step = StepBuffer::new(&gpu).unwrap();
    let mut rng = Rng::new(0x5111);
    let mut failures = Vec::new();
    use GgmlType::*;
    for (ty, cols) in [(Q4_1, 576), (Q8_0, 576), (Q4_1, 1536), (Q4_0, 2048)] {
        let n = 3;
        // A residual stream's spread: most values small, a few large.
        let x: Vec<f32> = rng
            .vec(n * cols)
            .iter()
            .enumerate()
            .map(|(i, v)| if i % 97 == 5 { v * 60.0 } else { v * 0.7 })
            .collect();
        let nw: Vec<f32> = rng.vec(cols).iter().map(|v| 1.0 + v).collect();
        let eps = 1e-5;
        let mut normed = vec![0.0; x.len()];
        for (o, r) in normed.chunks_mut(cols).zip(x.chunks(cols)) {
            rmsnorm(o, r, &nw, eps);
        }
        let (xb, wb) = (buffer(&gpu, "x", &x), buffer(&gpu, "norm", &nw));
        let yb = buffer(&gpu, "y", &vec![f32::NAN; x.len()]);
        let qb = buffer(&gpu, "xq", &vec![0u32; n * packed_stride(cols as u32) as usize]);
        let k = ActQuant::new_normed(
            &gpu,
            &step,
            ty,
            (&xb, 0),
            (&yb, 0),
            (&qb, 0),
            (&wb, eps),
            cols as u32,
            n as u32,
        )
        .unwrap()
        .unwrap();
        failures.extend(check_conversion(
            &gpu,
            &step,
            &format!("norm {ty} {cols}"),
            ty,
            (k, yb, qb),
            &normed,
            cols,
        ));

        // SwiGLU: gates over the whole range exp takes, including its saturating paths.
        let gate: Vec<f32> = rng
            .vec(n * cols)
            .iter()
            .enumerate()
            .map(|(i, v)| v * if i % 13 == 0 { 120.0 } else { 9.0 })
            .collect();
        let up: Vec<f32> = rng.vec(n * cols).iter().map(|v| v * 2.0).collect();
        let mut glu = gate.clone();
        swiglu(&mut glu, &up);
        let (gb, ub) = (buffer(&gpu, "gate", &gate), buffer(&gpu, "up", &up));
        let yb = buffer(&gpu, "y", &vec![f32::NAN; x.len()]);
        let qb = buffer(&gpu, "xq", &vec![0u32; n * packed_stride(cols as u32) as usize]);
        let k = ActQuant::new_glu(
            &gpu,
            &step,
            ty,
            (&gb, 0),
            (&yb, 0),
            (&qb, 0),
            (&ub, 0),
            false,
            cols as u32,
            n as u32,
        )
        .unwrap()
        .unwrap();
        failures.extend(check_conversion(
            &gpu,
            &step,
            &format!("silu {ty} {cols}"),
            ty,
            (k, yb, qb),
            &glu,
            cols,
        ));
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// The CPU reference's attention of one token at (seq, pos) over caches laid out as the GPU's
/// (`[n_seq, n_ctx, kv_dim]`): cpu::attention's two steps, as the CPU forward pass runs them.
fn cpu_attention(dims: &AttnDims, k: &[f16], v: &[f16], q: &[f32], (seq, pos): (usize, usize)) -> Vec<f32> {
    let (n_ctx, kvd, hd) = (dims.n_ctx as usize, dims.kv_dim() as usize, dims.head_dim as usize);
    let region = seq * n_ctx * kvd;
    let k = &k[region..region + n_ctx * kvd];
    // The CPU's V cache is transposed: [kv_dim, n_ctx].
    let vt: Vec<f16> = (0..kvd)
        .flat_map(|d| (0..n_ctx).map(move |c| (d, c)))
        .map(|(d, c)| v[region + c * kvd + d])
        .collect();
    let start = dims.window.map_or(0, |w| (pos + 1).saturating_sub(w as usize));
    let group = (dims.n_head / dims.n_head_kv) as usize;
    let mut out = vec![0f32; q.len()];
    for h in 0..dims.n_head as usize {
        let q16: Vec<f32> = q[h * hd..][..hd].iter().map(|&x| f16::from_f32(x).to_f32()).collect();
        let kv_off = (h / group) * hd;
        let mut p = vec![0f32; pos + 1 - start];
        attn_probs(&mut p, &q16, &k[start * kvd..], kvd, kv_off, dims.kq_scale, start);
        attn_values(&mut out[h * hd..][..hd], &p, &vt[start..], n_ctx, kv_off, start);
    }
    out
}

#[test]
fn the_exact_attention_is_the_cpus_bit_for_bit() {
    let Some(gpu) = exact_gpu() else { return };
    let mut rng = Rng::new(0xa7);
    let mut failures = Vec::new();
    let (n_ctx, n_seq, q_off, att_off) = (320u32, 2u32, 3u64, 5u64);
    // SmolLM2's heads; a head_dim with a tail past its whole 32s; a sliding window.
    for (n_head, n_head_kv, head_dim, window) in [(9, 3, 64, None), (4, 2, 80, None), (6, 6, 64, Some(20))] {
        let dims = AttnDims {
            n_head,
            n_head_kv,
            head_dim,
            n_ctx,
            n_seq,
            max_tokens: 2,
            kq_scale: 1.0 / (head_dim as f32).sqrt(),
            window,
        };
        let cells = (n_seq * n_ctx * dims.kv_dim()) as usize;
        let k: Vec<f16> = rng.vec(cells).into_iter().map(|x| f16::from_f32(x * 2.0)).collect();
        let v: Vec<f16> = rng.vec(cells).into_iter().map(f16::from_f32).collect();
        let bits = |c: &[f16]| -> Vec<u32> {
            c.chunks(2).map(|p| p[0].to_bits() as u32 | (p[1].to_bits() as u32) << 16).collect()
        };
        let (kb, vb) = (buffer(&gpu, "k", &bits(&k)), buffer(&gpu, "v", &bits(&v)));
        let rows = (2 * dims.q_dim()) as usize;
        let qb = buffer(&gpu, "q", &vec![0f32; q_off as usize + rows]);
        let ab = buffer(&gpu, "att", &vec![0f32; att_off as usize + rows]);
        let table = StepTable::new(&gpu, 2, n_seq, Attention::tile_rows().unwrap()).unwrap();
        let scratch = buffer(&gpu, "scratch", &vec![0u8; Attention::scratch_bytes(&dims).unwrap() as usize]);
        let attn = Attention::new(&gpu, &qb, q_off, &kb, &vb, &ab, att_off, &table, &scratch, dims).unwrap();
        // One token at several depths (a cell count past 8-cell groups and 32-lane rounds), then
        // two sequences' tokens in one step.
        for seats in [vec![(1, 0)], vec![(1, 6)], vec![(0, 37)], vec![(1, 299)], vec![(0, 6), (1, 99)]] {
            let mut plan = StepPlan::new(Attention::tile_rows().unwrap());
            for &(seq, pos) in &seats {
                plan.push(seq, pos, &[0], false);
            }
            let q: Vec<f32> = rng.vec(seats.len() * dims.q_dim() as usize).iter().map(|x| x * 3.0).collect();
            gpu.queue().write_buffer(&qb, q_off * 4, bytemuck::cast_slice(&q));
            table.write(&gpu, &plan).unwrap();
            let mut enc = gpu.device().create_command_encoder(&Default::default());
            attn.encode(&mut enc.begin_compute_pass(&Default::default()), &plan).unwrap();
            gpu.submit(enc, "exact attention").unwrap();
            let att = read_all_f32(&gpu, &ab);
            for (i, &(seq, pos)) in seats.iter().enumerate() {
                let qd = dims.q_dim() as usize;
                let want = cpu_attention(&dims, &k, &v, &q[i * qd..][..qd], (seq as usize, pos as usize));
                let got = &att[att_off as usize + i * qd..][..qd];
                if let Some((j, g, w)) = first_difference(got, &want) {
                    failures.push(format!("{dims:?} seats {seats:?} token {i}: att[{j}] = {g:e}, CPU {w:e}"));
                }
            }
        }
        // A prompt of two tokens in one step is refused, not computed another way.
        let mut plan = StepPlan::new(Attention::tile_rows().unwrap());
        plan.push(0, 0, &[0, 0], false);
        table.write(&gpu, &plan).unwrap();
        let mut enc = gpu.device().create_command_encoder(&Default::default());
        let refused = attn.encode(&mut enc.begin_compute_pass(&Default::default()), &plan);
        assert!(matches!(refused, Err(Error::ExactUnsupported { .. })), "{refused:?}");
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn the_exact_rope_and_cache_store_are_the_cpus_bit_for_bit() {
    let Some(gpu) = exact_gpu() else { return };
    let step = StepBuffer::new(&gpu).unwrap();
    let mut rng = Rng::new(0x2095);
    let mut failures = Vec::new();
    let factors: Vec<f32> = (0..32).map(|i| 1.0 + i as f32 * 0.25).collect();
    // SmolLM2 (theta 100000, all dims rotated, no q scale); NeoX pairs over part of the head with
    // a q scale and per-pair factors.
    for (kind, n_rot, q_scale, with_factors) in
        [(RopeKind::Normal, 64, 1.0, false), (RopeKind::Neox, 48, 0.125, true)]
    {
        let (n_head, n_head_kv, head_dim, n_ctx) = (9u32, 3u32, 64u32, 700u32);
        let dims = RopeKvDims { n_head, n_head_kv, head_dim, n_rot, n_ctx, n_seq: 1 };
        let freqs = RopeFreqs {
            theta_scale: 100000f32.powf(-2.0 / n_rot as f32),
            freq_scale: 1.0,
            attn_factor: 1.0,
            factors: with_factors.then_some(&factors[..]),
        };
        let (qd, kvd) = ((n_head * head_dim) as usize, (n_head_kv * head_dim) as usize);
        let table = StepTable::new(&gpu, 1, 1, Attention::tile_rows().unwrap()).unwrap();
        let angles = buffer(&gpu, "angles", &vec![0f32; n_rot as usize]);
        let words = (n_ctx as usize * kvd) / 2;
        let (kc, vc) =
            (buffer(&gpu, "k cache", &vec![0u32; words]), buffer(&gpu, "v cache", &vec![0u32; words]));
        for pos in [0u32, 1, 17, 640] {
            let x: Vec<f32> = rng.vec(qd + 2 * kvd).iter().map(|v| v * 4.0).collect();
            let xb = buffer(&gpu, "qkv", &x);
            let offs = (0, qd as u64, (qd + kvd) as u64);
            let k = RopeKv::new_exact(
                &gpu,
                &step,
                &table,
                &xb,
                offs,
                (&kc, &vc, 0),
                dims,
                kind,
                &angles,
                q_scale,
            )
            .unwrap();
            let mut plan = StepPlan::new(Attention::tile_rows().unwrap());
            plan.push(0, pos, &[0], false);
            table.write(&gpu, &plan).unwrap();
            let a = exact_angles(&freqs, n_rot as usize, std::iter::once(pos as usize));
            gpu.queue().write_buffer(&angles, 0, bytemuck::cast_slice(&a));
            run_step(&gpu, &step, Step::new(0, 1), |p| k.encode(p, 1)).unwrap();
            // The CPU forward pass: rope of q (then its scale) and of k, k and v to f16.
            let mut cs = vec![(0f32, 0f32); n_rot as usize / 2];
            rope_angles(&mut cs, pos as usize, &freqs);
            let (mut q, mut kk) = (x[..qd].to_vec(), x[qd..qd + kvd].to_vec());
            rope(&mut q, head_dim as usize, &cs, kind);
            if q_scale != 1.0 {
                q.iter_mut().for_each(|v| *v *= q_scale);
            }
            rope(&mut kk, head_dim as usize, &cs, kind);
            let what = format!("{kind:?} n_rot {n_rot} at {pos}");
            if let Some((i, g, w)) = first_difference(&read_all_f32(&gpu, &xb)[..qd], &q) {
                failures.push(format!("{what}: q[{i}] = {g:e}, CPU {w:e}"));
            }
            let pack = |v: &[f32]| -> Vec<u32> {
                v.chunks(2)
                    .map(|p| {
                        f16::from_f32(p[0]).to_bits() as u32 | (f16::from_f32(p[1]).to_bits() as u32) << 16
                    })
                    .collect()
            };
            let row = pos as usize * kvd / 2..(pos as usize + 1) * kvd / 2;
            if read_all_u32(&gpu, &kc)[row.clone()] != pack(&kk)[..] {
                failures.push(format!("{what}: the cached k differs"));
            }
            if read_all_u32(&gpu, &vc)[row] != pack(&x[qd + kvd..])[..] {
                failures.push(format!("{what}: the cached v differs"));
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// A synthetic tiny model of `arch` with `weights` (the output matrix Q8_0).
fn tiny(arch: aether_core::model::Arch, weights: GgmlType) -> Vec<u8> {
    use aether_core::synth::{Shape, Spec, Synth};
    let shape = Shape::named("tiny", arch).expect("tiny");
    Synth::new(&Spec { arch, shape, weights, output: GgmlType::Q8_0, seed: 11 })
        .and_then(|s| s.to_bytes())
        .expect("synth")
}

/// Every architecture exact numerics cover — llama, Qwen 2 (q/k/v biases), Phi-3 (fused q|k|v
/// and gate|up, NeoX rope) — gives the CPU's logits bit for bit along 12 greedy tokens, for each
/// weight type they take; Qwen 3 (q/k norms) and Gemma 3 (GELU, post-norms, windows) are refused
/// with `ExactUnsupported`, not run another way.
#[test]
fn tiny_models_of_every_covered_architecture_give_the_cpus_logits() {
    use aether_core::cpu::Serial;
    use aether_core::gguf::Gguf;
    use aether_core::gpu::{GpuBackend, GpuModel};
    use aether_core::model::{Arch, Model};
    use aether_core::session::CpuBackend;
    use aether_tests::arch_goldens::Logits;
    use aether_tests::logits::argmax;
    let Some(gpu) = exact_gpu() else { return };
    let mut failures = Vec::new();
    for arch in [Arch::Llama, Arch::Qwen2, Arch::Phi3] {
        for ty in [GgmlType::Q8_0, GgmlType::Q4_1, GgmlType::Q4_0] {
            let bytes = tiny(arch, ty);
            let g = Gguf::parse(&bytes).unwrap();
            let model = Model::from_gguf(&g).unwrap();
            let gm = GpuModel::upload(&gpu, &model, &mut |_, _| {}).unwrap();
            let mut b = GpuBackend::new(&gpu, &gm, 64, 8).unwrap();
            let mut cpu = CpuBackend::new(&model, 64, &Serial);
            let (mut want, mut got) = (cpu.logits(&[1, 2, 3]), b.logits(&[1, 2, 3]));
            for step in 0..12 {
                if let Some((i, g, w)) = first_difference(&got, &want) {
                    failures.push(format!("{arch:?} {ty} step {step}: logit {i} = {g:e}, CPU {w:e}"));
                    break;
                }
                let t = argmax(&want);
                (want, got) = (cpu.logits(&[t]), b.logits(&[t]));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for arch in [Arch::Qwen3, Arch::Gemma3] {
        let bytes = tiny(arch, GgmlType::Q8_0);
        let g = Gguf::parse(&bytes).unwrap();
        let model = Model::from_gguf(&g).unwrap();
        let gm = GpuModel::upload(&gpu, &model, &mut |_, _| {}).unwrap();
        match GpuBackend::new(&gpu, &gm, 64, 8) {
            Err(Error::ExactUnsupported { what }) => eprintln!("{arch:?}: refused ({what})"),
            Err(e) => panic!("{arch:?}: expected ExactUnsupported, got {e}"),
            Ok(_) => panic!("{arch:?} under exact numerics"),
        }
    }
}
