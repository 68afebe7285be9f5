//! `shaders/rope.wgsl` against its CPU twin (`gpu::rope_cpu`: the CPU forward pass's
//! `rope_angles` + `rope`): both pairings, full and partial rotation (n_rot < head_dim), per-pair
//! factors (Llama 3 / LongRoPE), frequency scaling, attention factor, a q scale, positions from 0
//! to 10⁵ (where an unreduced sin/cos would go wrong), each token at its own position from the
//! step table (a run of consecutive positions, then tokens of other sequences elsewhere), odd
//! head counts and token counts, an offset, and a dispatch sized for more tokens than the step
//! holds.

use aether_core::cpu::ops::RopeFreqs;
use aether_core::gpu::{GpuOptions, Rope, Step, StepBuffer, StepPlan, StepTable, rope_cpu};
use aether_core::model::RopeKind;
use aether_tests::gpu::{Rng, assert_nmse, assert_untouched, buffer, read_all_f32, run_step, test_gpu};

struct Case {
    n_heads: usize,
    head_dim: usize,
    n_rot: usize,
    n_tok: usize,
    pos0: usize,
    base: f32,
    factors: bool,
    freq_scale: f32,
    attn_factor: f32,
    scale: f32,
}

const fn case(n_heads: usize, head_dim: usize, n_rot: usize, n_tok: usize, pos0: usize) -> Case {
    Case {
        n_heads,
        head_dim,
        n_rot,
        n_tok,
        pos0,
        base: 10_000.0,
        factors: false,
        freq_scale: 1.0,
        attn_factor: 1.0,
        scale: 1.0,
    }
}

fn cases() -> Vec<Case> {
    vec![
        case(1, 2, 2, 1, 0),
        case(3, 64, 64, 5, 7),
        case(7, 128, 128, 1, 4095),
        case(5, 64, 32, 3, 300),
        Case { base: 500_000.0, factors: true, ..case(9, 128, 128, 13, 9000) },
        Case { base: 1_000_000.0, freq_scale: 0.25, attn_factor: 1.19, ..case(4, 96, 96, 2, 100_000) },
        Case { scale: 0.0625, ..case(3, 256, 256, 4, 31) },
        Case { factors: true, scale: 0.125, attn_factor: 1.05, ..case(2, 80, 48, 6, 65_000) },
    ]
}

#[test]
fn rope_matches_cpu() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let step = StepBuffer::new(&gpu).expect("step buffer");
    let mut rng = Rng::new(3);
    for c in cases() {
        for kind in [RopeKind::Normal, RopeKind::Neox] {
            let what = format!(
                "{kind:?} heads={} head_dim={} n_rot={} tokens={} pos0={} base={} factors={} freq_scale={} attn_factor={} scale={}",
                c.n_heads,
                c.head_dim,
                c.n_rot,
                c.n_tok,
                c.pos0,
                c.base,
                c.factors,
                c.freq_scale,
                c.attn_factor,
                c.scale
            );
            let off = 5;
            let n = c.n_tok * c.n_heads * c.head_dim;
            let x: Vec<f32> = (0..off + n + 3).map(|_| rng.f32() * 4.0).collect();
            let factors: Vec<f32> = (0..c.n_rot / 2).map(|_| 1.0 + 39.0 * (rng.f32() + 1.0) / 2.0).collect();
            let freqs = RopeFreqs {
                theta_scale: c.base.powf(-2.0 / c.n_rot as f32),
                freq_scale: c.freq_scale,
                attn_factor: c.attn_factor,
                factors: c.factors.then_some(&factors[..]),
            };
            // The first half of the tokens a run from pos0, the others one-token runs of other
            // sequences, spread below pos0 + 50.
            let mut plan = StepPlan::new(16);
            let run = c.n_tok.div_ceil(2);
            plan.push(0, c.pos0 as u32, &vec![0; run], false);
            for t in run..c.n_tok {
                plan.push(t as u32, ((c.pos0 * 7 + 13 * t) % (c.pos0 + 50)) as u32, &[0], false);
            }
            let table = StepTable::new(&gpu, c.n_tok as u32, c.n_tok as u32, 16).expect("step table");
            table.write(&gpu, &plan).expect("write the table");
            let pos: Vec<usize> = plan.at.iter().map(|a| a[1] as usize).collect();
            let xb = buffer(&gpu, "x", &x);
            let rope = Rope::new(
                &gpu,
                &step,
                &table,
                (&xb, off as u64),
                c.n_heads as u32,
                c.head_dim as u32,
                c.n_rot as u32,
                kind,
                &freqs,
                c.scale,
            )
            .unwrap_or_else(|e| panic!("{what}: {e}"));
            run_step(&gpu, &step, Step::new(0, c.n_tok as u32), |pass| rope.encode(pass, c.n_tok as u32 + 2))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let mut want = x[off..off + n].to_vec();
            rope_cpu(&mut want, &pos, c.n_heads, c.head_dim, c.n_rot, kind, &freqs, c.scale);
            let got = read_all_f32(&gpu, &xb);
            let nmse = assert_nmse(&got[off..off + n], &want, 1e-6, &what);
            assert_untouched(&got, &x, off..off + n, &what);
            eprintln!("{what}: NMSE {nmse:.2e}");
        }
    }
}

#[test]
fn rope_refuses_odd_sizes() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let step = StepBuffer::new(&gpu).expect("step buffer");
    let table = StepTable::new(&gpu, 4, 1, 16).expect("step table");
    let xb = buffer(&gpu, "x", &[0f32; 64]);
    let freqs = RopeFreqs { theta_scale: 0.9, freq_scale: 1.0, attn_factor: 1.0, factors: None };
    for (head_dim, n_rot) in [(7, 6), (8, 5), (8, 10)] {
        let r = Rope::new(&gpu, &step, &table, (&xb, 0), 2, head_dim, n_rot, RopeKind::Neox, &freqs, 1.0);
        assert!(
            matches!(r, Err(aether_core::Error::GpuKernelShape { .. })),
            "head_dim {head_dim}, n_rot {n_rot}: {:?}",
            r.err()
        );
    }
}
