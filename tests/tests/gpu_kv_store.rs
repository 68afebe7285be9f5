//! `shaders/kv_store.wgsl` against its CPU twin (`gpu::kv_store_cpu`): k and v rows rounded to
//! f16 pairs into one layer's caches, each token at its own (sequence, position) from the step
//! table — runs of several sequences in one step — at a layer offset inside shared buffers, with
//! odd pair counts, a run that goes past n_ctx (those cells are skipped), f16 overflow and
//! subnormals. The only difference allowed is rounding: each f16 at most one unit in the last place
//! from the twin's (round-to-nearest-even), the same sign. An odd kv_dim is refused.

use aether_core::gpu::{GpuOptions, KvStore, Step, StepBuffer, StepPlan, StepTable, kv_store_cpu};
use aether_tests::gpu::{Rng, buffer, read_all_u32, run_step, test_gpu};

const SENTINEL: u32 = 0xdead_beef;

/// A run of a step: (sequence, first position, tokens).
type Run = (u32, u32, usize);

/// The f16 halves of two u32 words differ by at most 1 in their bits (same sign).
fn close(a: u32, b: u32) -> bool {
    [0, 16].iter().all(|&s| {
        let (x, y) = ((a >> s) as u16, (b >> s) as u16);
        (x & 0x8000) == (y & 0x8000) && (x as i32 - y as i32).abs() <= 1
    })
}

#[test]
fn kv_store_matches_cpu() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let step = StepBuffer::new(&gpu).expect("step buffer");
    let mut rng = Rng::new(21);
    // (kv_dim, n_ctx, n_seq, runs of (sequence, first position, tokens))
    let cases: [(usize, usize, usize, &[Run]); 4] = [
        (2, 5, 1, &[(0, 0, 1)]),
        (130, 37, 3, &[(1, 3, 7), (0, 36, 1), (2, 0, 2)]),
        (512, 64, 2, &[(1, 63, 1), (0, 0, 1)]),
        (256, 40, 2, &[(1, 36, 9), (0, 5, 3)]),
    ];
    for (kv_dim, n_ctx, n_seq, runs) in cases {
        let n_tok: usize = runs.iter().map(|r| r.2).sum();
        let what = format!("kv_dim={kv_dim} n_ctx={n_ctx} n_seq={n_seq} runs={runs:?}");
        let mut plan = StepPlan::new(16);
        for &(seq, pos0, n) in runs {
            plan.push(seq, pos0, &vec![0; n], false);
        }
        let table = StepTable::new(&gpu, n_tok as u32, n_seq as u32, 16).expect("step table");
        table.write(&gpu, &plan).expect("write the table");
        let region = n_seq * n_ctx * kv_dim;
        let (k_off, v_off, cache_off) = (3, 8, region);
        let n = n_tok * kv_dim;
        let mut k: Vec<f32> = (0..k_off + n).map(|_| rng.f32() * 8.0).collect();
        let v: Vec<f32> = (0..v_off + n).map(|_| rng.f32() * 1e-5).collect(); // f16 subnormals
        k[k_off] = 1e6; // past f16's range: inf
        // Two layers' worth: the kernel writes only the second.
        let words = 2 * region / 2 + 1;
        let (kb, vb) = (buffer(&gpu, "k", &k), buffer(&gpu, "v", &v));
        let (kc, vc) = (
            buffer(&gpu, "k cache", &vec![SENTINEL; words]),
            buffer(&gpu, "v cache", &vec![SENTINEL; words]),
        );
        let store = KvStore::new(
            &gpu,
            &step,
            &table,
            (&kb, k_off as u64),
            (&vb, v_off as u64),
            &kc,
            &vc,
            cache_off as u64,
            kv_dim as u32,
            n_ctx as u32,
            n_seq as u32,
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        run_step(&gpu, &step, Step::new(0, n_tok as u32), |pass| store.encode(pass, n_tok as u32))
            .unwrap_or_else(|e| panic!("{what}: {e}"));

        let mut want_k = vec![SENTINEL; words];
        let mut want_v = vec![SENTINEL; words];
        let layer = cache_off / 2..cache_off / 2 + region / 2;
        let at: Vec<(usize, usize)> = plan.at.iter().map(|&[s, p]| (s as usize, p as usize)).collect();
        kv_store_cpu(
            &k[k_off..k_off + n],
            &v[v_off..v_off + n],
            &at,
            kv_dim,
            n_ctx,
            &mut want_k[layer.clone()],
            &mut want_v[layer.clone()],
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        for (name, got, want) in
            [("K", read_all_u32(&gpu, &kc), want_k), ("V", read_all_u32(&gpu, &vc), want_v)]
        {
            let mut rounding = 0;
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                let ok = if w == SENTINEL { g == SENTINEL } else { close(g, w) };
                assert!(
                    ok,
                    "{what}: {name} cache word {i} (cell {} of the layers' sequences, pair {}): got {g:#010x}, want {w:#010x}",
                    i / (kv_dim / 2),
                    i % (kv_dim / 2)
                );
                rounding += (g != w) as usize;
            }
            assert!(want[layer.clone()].iter().any(|&w| w != SENTINEL), "{what}: nothing stored");
            eprintln!("{what}: {name} words differing by one f16 ulp: {rounding}");
        }
    }
}

#[test]
fn kv_store_refuses_an_odd_kv_dim() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let step = StepBuffer::new(&gpu).expect("step buffer");
    let table = StepTable::new(&gpu, 4, 1, 16).expect("step table");
    let b = buffer(&gpu, "b", &[0f32; 64]);
    let r = KvStore::new(&gpu, &step, &table, (&b, 0), (&b, 0), &b, &b, 0, 7, 4, 1);
    assert!(matches!(r, Err(aether_core::Error::GpuKernelShape { .. })), "{:?}", r.err());
    let r = kv_store_cpu(&[0.0; 7], &[0.0; 7], &[(0, 0)], 7, 4, &mut [0; 8], &mut [0; 8]);
    assert!(matches!(r, Err(aether_core::Error::GpuKernelShape { .. })), "{r:?}");
}
