//! `shaders/gather.wgsl` against its CPU twin (`gpu::gather_cpu`): rows of an f32 matrix copied in
//! a table's order (the output head's rows of a step), with offsets, odd widths, rows repeated and
//! out of order, a dispatch sized for more rows than the step holds, and the destination outside
//! the copied rows untouched. A copy is exact: bit-equal.

use aether_core::gpu::{Gather, GpuOptions, Step, StepBuffer, gather_cpu};
use aether_tests::gpu::{Rng, assert_untouched, buffer, read_all_f32, run_step, test_gpu};

#[test]
fn gather_matches_cpu() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let step = StepBuffer::new(&gpu).expect("step buffer");
    let mut rng = Rng::new(17);
    // (width, source rows, gathered rows)
    let cases: [(usize, usize, &[u32]); 3] =
        [(1, 1, &[0]), (576, 37, &[36, 0, 17, 17, 5]), (1031, 3, &[2, 1])];
    for (width, src_rows, rows) in cases {
        let what = format!("width={width} source rows={src_rows} rows={rows:?}");
        let (src_off, dst_off, max_rows) = (7, 3, rows.len() + 2);
        let src: Vec<f32> = rng.vec(src_off + src_rows * width);
        let dst: Vec<f32> = rng.vec(dst_off + max_rows * width + 1);
        let (sb, db) = (buffer(&gpu, "src", &src), buffer(&gpu, "dst", &dst));
        // The table is sized for `max_rows`; the step gathers `rows.len()`.
        let rows_buf = buffer(&gpu, "rows", &[rows, &[0, 0][..]].concat());
        let g = Gather::new(
            &gpu,
            &step,
            &rows_buf,
            (&sb, src_off as u64),
            (&db, dst_off as u64),
            width as u32,
            max_rows as u32,
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        run_step(&gpu, &step, Step::new(0, rows.len() as u32), |pass| g.encode(pass, max_rows as u32))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let want = gather_cpu(&src[src_off..], rows, width);
        let got = read_all_f32(&gpu, &db);
        let range = dst_off..dst_off + want.len();
        for (i, (g, w)) in got[range.clone()].iter().zip(&want).enumerate() {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "{what}: element {i} (row {}): got {g}, want {w}",
                i / width
            );
        }
        assert_untouched(&got, &dst, range, &what);
    }
}
