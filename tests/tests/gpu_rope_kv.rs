//! `shaders/rope_kv.wgsl` (rope of q and k, and the cache store of k and v, in one dispatch)
//! against its CPU twin (`gpu::rope_kv_cpu`: `rope_cpu` of q and k, then `kv_store_cpu`): both
//! pairings, full and partial rotation (half of n_rot odd too), grouped heads (fewer k heads than q heads), per-pair
//! factors, a q scale, positions up to 10⁵, tokens of several sequences at their own positions,
//! q, k and v at odd offsets of one buffer, a cache offset, and a dispatch sized for more tokens
//! than the step holds. q must match to NMSE 1e-6, the caches' f16 values to NMSE 1e-6; k and v
//! stay as they were in their buffer, and no cache cell outside the step's is written.

use aether_core::cpu::ops::RopeFreqs;
use aether_core::gpu::{GpuOptions, RopeKv, RopeKvDims, Step, StepBuffer, StepPlan, StepTable, rope_kv_cpu};
use aether_core::model::RopeKind;
use aether_tests::gpu::{Rng, assert_nmse, buffer, read_all_f32, read_all_u32, run_step, test_gpu};
use half::f16;

/// (n_head, n_head_kv, head_dim, n_rot, tokens, pos0, factors, q_scale)
type Case = (usize, usize, usize, usize, usize, usize, bool, f32);

const CASES: [Case; 7] = [
    (1, 1, 2, 2, 1, 0, false, 1.0),
    // Half of n_rot odd: a cache word of NeoX's holds the first half's last dim and the second's first.
    (2, 1, 16, 6, 2, 50, true, 1.0),
    (4, 2, 64, 64, 5, 7, false, 1.0),
    (8, 2, 128, 128, 1, 4095, true, 1.0),
    (5, 5, 64, 32, 3, 300, false, 0.125),
    (4, 1, 96, 96, 2, 100_000, true, 1.0),
    (2, 1, 80, 48, 6, 65_000, true, 0.0625),
];

/// The f16 values of cache words.
fn halves(words: &[u32]) -> Vec<f32> {
    words
        .iter()
        .flat_map(|w| [f16::from_bits(*w as u16).to_f32(), f16::from_bits((w >> 16) as u16).to_f32()])
        .collect()
}

#[test]
fn rope_kv_matches_cpu() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let step = StepBuffer::new(&gpu).expect("step buffer");
    let mut rng = Rng::new(17);
    for (n_head, n_head_kv, hd, n_rot, n_tok, pos0, with_factors, q_scale) in CASES {
        for kind in [RopeKind::Normal, RopeKind::Neox] {
            let what = format!(
                "{kind:?} heads={n_head}/{n_head_kv} head_dim={hd} n_rot={n_rot} tokens={n_tok} pos0={pos0} factors={with_factors} q_scale={q_scale}"
            );
            let (qd, kvd) = (n_head * hd, n_head_kv * hd);
            let (q_off, k_off) = (3, 3 + n_tok * qd + 2);
            let v_off = k_off + n_tok * kvd + 1;
            let x: Vec<f32> = (0..v_off + n_tok * kvd + 3).map(|_| rng.f32() * 4.0).collect();
            let factors: Vec<f32> = (0..n_rot / 2).map(|_| 1.0 + 39.0 * (rng.f32() + 1.0) / 2.0).collect();
            let freqs = RopeFreqs {
                theta_scale: 500_000f32.powf(-2.0 / n_rot as f32),
                freq_scale: 0.5,
                attn_factor: 1.1,
                factors: with_factors.then_some(&factors[..]),
            };
            // The first half of the tokens a run of sequence 0 from pos0, the others one-token
            // runs of other sequences below pos0 + 50.
            let mut plan = StepPlan::new(16);
            let run = n_tok.div_ceil(2);
            plan.push(0, pos0 as u32, &vec![0; run], false);
            for t in run..n_tok {
                plan.push(t as u32, ((pos0 * 7 + 13 * t) % (pos0 + 50)) as u32, &[0], false);
            }
            let (n_seq, n_ctx) = (n_tok, pos0 + 60);
            let table = StepTable::new(&gpu, n_tok as u32, n_seq as u32, 16).expect("step table");
            table.write(&gpu, &plan).expect("write the table");
            let at: Vec<(usize, usize)> = plan.at.iter().map(|a| (a[0] as usize, a[1] as usize)).collect();
            let cache_words = n_seq * n_ctx * kvd / 2;
            let cache_off = 2; // f16 elements: one word
            let xb = buffer(&gpu, "qkv", &x);
            let kb = buffer(&gpu, "k cache", &vec![0u32; 1 + cache_words]);
            let vb = buffer(&gpu, "v cache", &vec![0u32; 1 + cache_words]);
            let dims = RopeKvDims {
                n_head: n_head as u32,
                n_head_kv: n_head_kv as u32,
                head_dim: hd as u32,
                n_rot: n_rot as u32,
                n_ctx: n_ctx as u32,
                n_seq: n_seq as u32,
            };
            let offs = (q_off as u64, k_off as u64, v_off as u64);
            let k = RopeKv::new(
                &gpu,
                &step,
                &table,
                &xb,
                offs,
                (&kb, &vb, cache_off),
                dims,
                kind,
                &freqs,
                q_scale,
            )
            .unwrap_or_else(|e| panic!("{what}: {e}"));
            run_step(&gpu, &step, Step::new(0, n_tok as u32), |pass| k.encode(pass, n_tok as u32 + 2))
                .unwrap_or_else(|e| panic!("{what}: {e}"));

            let mut q = x[q_off..q_off + n_tok * qd].to_vec();
            let mut kk = x[k_off..k_off + n_tok * kvd].to_vec();
            let v = &x[v_off..v_off + n_tok * kvd];
            let (mut kc, mut vc) = (vec![0u32; cache_words], vec![0u32; cache_words]);
            rope_kv_cpu(&mut q, &mut kk, v, &at, dims, kind, &freqs, q_scale, &mut kc, &mut vc)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let got = read_all_f32(&gpu, &xb);
            assert_nmse(&got[q_off..q_off + n_tok * qd], &q, 1e-6, &format!("{what}: q"));
            for i in (0..x.len()).filter(|i| !(q_off..q_off + n_tok * qd).contains(i)) {
                assert_eq!(got[i].to_bits(), x[i].to_bits(), "{what}: element {i} outside q changed");
            }
            for (name, buf, want) in [("K", &kb, &kc), ("V", &vb, &vc)] {
                let words = read_all_u32(&gpu, buf);
                assert_eq!(words[0], 0, "{what}: {name} cache word before the offset written");
                assert_nmse(&halves(&words[1..]), &halves(want), 1e-6, &format!("{what}: {name} cache"));
                for (i, (g, w)) in words[1..].iter().zip(want.iter()).enumerate() {
                    assert!(
                        (*w == 0) == (*g == 0)
                            || halves(&[*w]).iter().zip(halves(&[*g])).all(|(a, b)| (a - b).abs() < 1e-2),
                        "{what}: {name} cache word {i}: want {w:#x}, got {g:#x}"
                    );
                }
            }
        }
    }
}
