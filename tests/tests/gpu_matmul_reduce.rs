//! The split-K sum (`shaders/matmul_reduce.wgsl`, the tensor-core matmul's second pass) against
//! its CPU twin, on whatever adapter this machine has (it uses nothing optional, so lavapipe runs
//! it although the matmul that feeds it needs cooperative matrices): 1 to 16 splits, a step
//! shorter than the scratch's token slices, a y offset, and nothing written past the step.
//!
//! No adapter = failure, unless `AETHER_NO_GPU=1` (see `aether_tests::gpu`).

use aether_core::gpu::{GpuOptions, MatMulReduce, Step, StepBuffer, matmul_reduce_cpu};
use aether_tests::gpu::{Rng, assert_nmse, buffer, read_all_f32, test_gpu};

const UNTOUCHED: f32 = 12345.0;

#[test]
fn matmul_reduce_matches_cpu() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let mut rng = Rng::new(5);
    for (rows, splits, split_tokens, n_tokens) in
        [(7, 1, 3, 3), (130, 3, 19, 17), (300, 16, 66, 64), (1030, 6, 5, 1)]
    {
        let what = format!("rows={rows} splits={splits} split_tokens={split_tokens} n_tokens={n_tokens}");
        let part = rng.vec(splits * split_tokens * rows);
        let y_off = 5;
        let y_len = y_off + split_tokens * rows;
        let mut want = vec![UNTOUCHED; y_len];
        matmul_reduce_cpu(&part, &mut want[y_off..], rows, splits, split_tokens, n_tokens);
        let pb = buffer(&gpu, "part", &part);
        let yb = buffer(&gpu, "y", &vec![UNTOUCHED; y_len]);
        let step = StepBuffer::new(&gpu).expect("step");
        step.write(&gpu, Step::new(0, n_tokens as u32));
        let op = MatMulReduce::new(
            &gpu,
            &step,
            &pb,
            (&yb, y_off as u64),
            rows as u32,
            splits as u32,
            split_tokens as u32,
        )
        .expect(&what);
        let mut enc = gpu.device().create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            op.encode(&mut pass, n_tokens as u32);
        }
        gpu.submit(enc, "matmul_reduce test").expect(&what);
        let got = read_all_f32(&gpu, &yb);
        let end = y_off + n_tokens * rows;
        if let Some(i) = (0..y_off).chain(end..y_len).find(|&i| got[i] != UNTOUCHED) {
            panic!("{what}: wrote y[{i}] = {} outside y[{y_off}..{end}]", got[i]);
        }
        assert_nmse(&got[y_off..end], &want[y_off..end], 1e-6, &what);
        eprintln!("{what}: ok");
    }
}
