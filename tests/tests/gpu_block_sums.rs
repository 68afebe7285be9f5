//! `block_sums.wgsl` (the Q4_1/Q5_1 block-sum correction after a matmul) against its CPU twin,
//! and the point of it: the matmul plus the correction against the CPU's own Q4_1 × Q8_1 dot
//! products (`quant::dot_quantized`), much closer than the matmul alone. Odd sizes: rows not a multiple of
//! the workgroup, more blocks than the workgroup's run of 64, several tokens, y and xq at
//! offsets, the weights split across buffers by a small binding limit.

use aether_core::gpu::{
    BlockSums, GpuOptions, GpuTensor, MatMul, Step, StepBuffer, act_pack_cpu, act_quant_cpu, block_sums_cpu,
    packed_stride,
};
use aether_core::quant::{self, GgmlType};
use aether_tests::gpu::{Rng, assert_nmse, buffer, read_all_f32, run_step, test_gpu, weights};

/// y (n_tokens × rows, at element y_off) after the correction on the GPU, starting from `y0`.
fn gpu_block_sums(opts: GpuOptions, ty: GgmlType, rows: usize, cols: usize, n: usize, seed: u64) {
    let Some(gpu) = test_gpu(opts) else { return };
    let mut rng = Rng::new(seed);
    let w = weights(ty, rows, cols, false, &mut rng);
    let x = rng.vec(n * cols);
    let (y_off, q_off) = (5usize, 8usize);
    let y0: Vec<f32> = (0..y_off + n * rows).map(|i| i as f32 * 0.25 - 3.0).collect();
    let mut xq = vec![0u32; q_off];
    xq.extend(act_pack_cpu(ty, &x, cols).expect("pack"));
    let t = GpuTensor::upload(&gpu, "w", ty, cols as u64, rows as u64, &w, &mut |_, _| {}).expect("upload");
    let (yb, xqb) = (buffer(&gpu, "y", &y0), buffer(&gpu, "xq", &xq));
    let step = StepBuffer::new(&gpu).expect("step");
    let k =
        BlockSums::new(&gpu, &t, (&xqb, q_off as u64), (&yb, y_off as u64), &step, n as u32).expect("kernel");
    run_step(&gpu, &step, Step::new(0, n as u32), |pass| k.encode(pass, n as u32)).expect("run");
    let got = read_all_f32(&gpu, &yb);
    let mut want = y0.clone();
    block_sums_cpu(ty, &w, &x, cols, &mut want[y_off..]).expect("twin");
    let what = format!("block_sums {ty} {rows}×{cols}, {n} tokens, pieces {}", t.pieces.len());
    assert_eq!(&got[..y_off], &y0[..y_off], "{what}: wrote before y_off");
    assert_nmse(&got[y_off..], &want[y_off..], 1e-6, &what);
    // The corrections alone, not drowned in y0: each within f32 rounding of the twin's.
    for (i, (g, w)) in got.iter().zip(&want).enumerate().skip(y_off) {
        let (dg, dw) = (g - y0[i], w - y0[i]);
        assert!((dg - dw).abs() <= 1e-5 * (1.0 + dw.abs()), "{what}: element {i}: {dg} vs {dw}");
    }
}

#[test]
fn block_sums_match_the_cpu() {
    for (ty, rows, cols, n) in
        [(GgmlType::Q4_1, 67, 64, 1), (GgmlType::Q4_1, 131, 2080, 3), (GgmlType::Q5_1, 70, 96, 5)]
    {
        gpu_block_sums(GpuOptions::default(), ty, rows, cols, n, 7 + rows as u64);
    }
    // Split weights: 200 rows of 2080 Q4_1 columns are 260 kB; a 64 kB binding holds 49 rows.
    gpu_block_sums(
        GpuOptions { max_storage_binding: Some(64 << 10), ..Default::default() },
        GgmlType::Q4_1,
        200,
        2080,
        2,
        3,
    );
}

/// The matmul and the correction together give the CPU's dot products (`quant::dot_quantized` of
/// Q8_1 activations with their f16 block sums) to f32 rounding, where the matmul alone is off by
/// the sums' rounding.
#[test]
fn matmul_with_block_sums_is_the_cpus_q4_1_product() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let (ty, rows, cols, n) = (GgmlType::Q4_1, 96, 1024, 4);
    let mut rng = Rng::new(11);
    let w = weights(ty, rows, cols, false, &mut rng);
    let x = rng.vec(n * cols);
    let xr = act_quant_cpu(ty, &x).expect("rounded x");
    let t = GpuTensor::upload(&gpu, "w", ty, cols as u64, rows as u64, &w, &mut |_, _| {}).expect("upload");
    let (xb, xqb) = (buffer(&gpu, "x", &xr), buffer(&gpu, "xq", &act_pack_cpu(ty, &x, cols).expect("pack")));
    assert_eq!(xqb.size() as usize, n * packed_stride(cols as u32) as usize * 4);
    let yb = buffer(&gpu, "y", &vec![0f32; n * rows]);
    let step = StepBuffer::new(&gpu).expect("step");
    let mm = MatMul::new(&gpu, &t, &xb, 0, &yb, 0, &step, n as u32).expect("matmul");
    let fix = BlockSums::new(&gpu, &t, (&xqb, 0), (&yb, 0), &step, n as u32).expect("block sums");
    run_step(&gpu, &step, Step::new(0, n as u32), |pass| mm.encode(pass, n as u32)).expect("matmul");
    let plain = read_all_f32(&gpu, &yb);
    run_step(&gpu, &step, Step::new(0, n as u32), |pass| fix.encode(pass, n as u32)).expect("fix");
    let fixed = read_all_f32(&gpu, &yb);
    // The CPU's product: x quantized to Q8_1 per token, then ggml's dot of the two formats.
    let rb = w.len() / rows;
    let mut acts = Vec::new();
    let mut want = Vec::new();
    for xt in x.chunks(cols) {
        quant::quantize_activations(ty, xt, &mut acts).expect("quantize");
        want.extend(w.chunks(rb).map(|row| quant::dot_quantized(ty, row, &acts).expect("dot")));
    }
    let before = assert_nmse(&plain, &want, 5e-4, "matmul alone");
    let after = assert_nmse(&fixed, &want, 1e-11, "matmul + block sums");
    assert!(after * 100.0 < before, "the correction did not close the gap: NMSE {before:.2e} -> {after:.2e}");
}
