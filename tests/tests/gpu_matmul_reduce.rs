//! The split-K sum (`shaders/matmul_reduce.wgsl`, the tensor-core matmul's second pass) against
//! its CPU twin, on whatever adapter this machine has (it uses nothing optional, so lavapipe runs
//! it although the matmul that feeds it needs cooperative matrices): 1 to 16 splits, a step
//! shorter than the scratch's token slices, a y offset, and nothing written past the step; and
//! the rows of a fused tensor's two or three parts each summed into its own region (with gaps
//! between them); and sums added to what y holds (a residual stream).
//!
//! No adapter = failure, unless `AETHER_NO_GPU=1` (see `aether_tests::gpu`).

use aether_core::gpu::{GpuOptions, MatMulReduce, Step, StepBuffer, matmul_reduce_cpu};
use aether_tests::gpu::{Rng, assert_nmse, buffer, read_all_f32, test_gpu};

const UNTOUCHED: f32 = 12345.0;

#[test]
fn matmul_reduce_matches_cpu() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let mut rng = Rng::new(5);
    // (parts (rows, y offset), splits, split_tokens, n_tokens)
    let cases: [(&[(usize, usize)], usize, usize, usize); 7] = [
        (&[(7, 5)], 1, 3, 3),
        (&[(130, 5)], 3, 19, 17),
        (&[(300, 5)], 16, 66, 64),
        (&[(1030, 5)], 6, 5, 1),
        // q|k|v: 9 + 3 + 3 rows, regions of 12 tokens with gaps between them.
        (&[(9, 2), (3, 2 + 9 * 12 + 1), (3, 2 + 12 * 12 + 7)], 4, 12, 10),
        // gate|up, one token.
        (&[(40, 0), (40, 40 * 8)], 2, 8, 1),
        // Added to y (the cases after the first four alternate).
        (&[(130, 0)], 5, 19, 17),
    ];
    for (i, (parts, splits, split_tokens, n_tokens)) in cases.into_iter().enumerate() {
        let add = i >= 4 && i % 2 == 0;
        let rows: usize = parts.iter().map(|&(r, _)| r).sum();
        let what = format!(
            "parts={parts:?} splits={splits} split_tokens={split_tokens} n_tokens={n_tokens} add={add}"
        );
        let part = rng.vec(splits * split_tokens * rows);
        let y_len = parts.iter().map(|&(r, off)| off + split_tokens * r).max().unwrap_or(0) + 3;
        let mut want = vec![UNTOUCHED; y_len];
        matmul_reduce_cpu(&part, &mut want, parts, (splits, split_tokens), n_tokens, add);
        let pb = buffer(&gpu, "part", &part);
        let yb = buffer(&gpu, "y", &vec![UNTOUCHED; y_len]);
        let step = StepBuffer::new(&gpu).expect("step");
        step.write(&gpu, Step::new(0, n_tokens as u32));
        let parts64: Vec<(u64, u64)> = parts.iter().map(|&(r, o)| (r as u64, o as u64)).collect();
        let op = MatMulReduce::new(&gpu, &step, &pb, &yb, &parts64, splits as u32, split_tokens as u32, add)
            .expect(&what);
        let mut enc = gpu.device().create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            op.encode(&mut pass, n_tokens as u32);
        }
        gpu.submit(enc, "matmul_reduce test").expect(&what);
        let got = read_all_f32(&gpu, &yb);
        // Written: each part's first n_tokens rows of its region; nothing else.
        let written = |i: usize| parts.iter().any(|&(r, off)| i >= off && i < off + n_tokens * r);
        if let Some(i) = (0..y_len).find(|&i| !written(i) && got[i] != UNTOUCHED) {
            panic!("{what}: wrote y[{i}] = {} outside the parts' rows of the step", got[i]);
        }
        let idx: Vec<usize> = (0..y_len).filter(|&i| written(i)).collect();
        assert!(idx.iter().all(|&i| want[i] != UNTOUCHED), "{what}: the twin left a row out");
        let (g, w): (Vec<f32>, Vec<f32>) = idx.iter().map(|&i| (got[i], want[i])).unzip();
        assert_nmse(&g, &w, 1e-6, &what);
        eprintln!("{what}: ok");
    }
}
