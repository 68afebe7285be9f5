//! The attention kernels (`shaders/attn_{decode,merge,prefill}.wgsl`) against their CPU twin
//! `gpu::attention_cpu`, on whatever adapter this machine has: lavapipe in CI.
//!
//! Shapes cover head_dim 64/80/96/128/256, GQA ratios 1/3/4/8, sliding windows (shorter and
//! longer than the context seen), decode at n_kv = 1, 7, 100, 200, 300, 4100 (one chunk of one
//! tile and of two, and several merged) and prefill chunks of 1, 13, 64 and 130 tokens at pos0 = 0 and 37, with q and att at
//! offsets; then batched steps over a cache of two sequences: decode tokens of both (one merged,
//! one not), a prompt chunk beside a decode token, two prompt chunks (twice). The caches are random over
//! all cells of both sequences, so a kernel that read a cell past a token's position, or of the
//! other sequence, would differ. Both device setups: its best features, and subgroups forced off
//! (the decode kernel's reductions differ; the tiled prefill kernel is one variant, its query
//! tiles of 64 rows cut here at 13, 20, 64, 70 and 130 tokens). And the decode kernel taking a kv
//! head's q heads together (as a step of many sequences runs it) against the CPU, and bit for bit
//! against one head a workgroup: a token attends the same way alone or in a batch.
//!
//! No adapter = failure, unless `AETHER_NO_GPU=1` (see `aether_tests::gpu`).

use aether_core::Error;
use aether_core::gpu::{Attention, AttnDims, Gpu, GpuOptions, Readback, StepPlan, StepTable, attention_cpu};
use aether_tests::gpu::{Rng, assert_nmse, test_gpu};
use half::f16;

/// Worst NMSE accepted (the bound for attention); measured ~3e-7 on lavapipe (a few f16
/// probabilities rounded the other way after sums in another order).
const MAX_NMSE: f64 = 5e-4;
/// Sentinel in att outside the rows a step writes.
const UNTOUCHED: f32 = 12345.0;
const N_CTX: u32 = 4200;
/// Sequences in the cache.
const N_SEQ: u32 = 2;
const MAX_TOKENS: u32 = 130;
const Q_OFF: u64 = 3;
const ATT_OFF: u64 = 5;

/// (n_head, n_head_kv, head_dim, window)
const SHAPES: [(u32, u32, u32, Option<u32>); 6] = [
    (9, 3, 64, None),  // SmolLM2-135M
    (8, 1, 128, None), // GQA 8
    (4, 4, 96, None),  // Phi-3
    (4, 2, 80, None),
    (8, 2, 256, Some(50)),  // Gemma 3 sliding-window layer
    (6, 6, 64, Some(2000)), // a window the decode at 4100 crosses
];

const DECODE_KV: [u32; 6] = [1, 7, 100, 200, 300, 4100];
const PREFILL: [(u32, u32); 8] = [(0, 1), (0, 13), (0, 64), (37, 1), (37, 13), (37, 64), (37, 130), (0, 130)];
/// Steps of several sequences: runs of (sequence, first position, tokens).
const BATCHED: [&[(u32, u32, u32)]; 5] = [
    &[(0, 6, 1), (1, 4099, 1)],
    &[(1, 37, 64), (0, 299, 1)],
    &[(0, 4000, 1), (1, 0, 13)],
    &[(1, 0, 13), (0, 37, 20)],
    // A run of a whole prefill tile and a part one (64 + 6 rows), beside a run of 3 deep in the
    // cache (many K/V tiles for one partial tile of queries).
    &[(0, 100, 70), (1, 3000, 3)],
];

/// The steps every shape runs: one sequence's decode tokens and prompt chunks, then batches.
fn steps() -> Vec<Vec<(u32, u32, u32)>> {
    let one =
        DECODE_KV.iter().map(|&n_kv| vec![(1, n_kv - 1, 1)]).chain(PREFILL.map(|(p, n)| vec![(1, p, n)]));
    one.chain(BATCHED.iter().map(|b| b.to_vec())).collect()
}

fn storage_buffer(gpu: &Gpu, label: &str, bytes: &[u8]) -> wgpu::Buffer {
    let buf = gpu.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (bytes.len() as u64).next_multiple_of(16),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    gpu.queue().write_buffer(&buf, 0, bytes);
    buf
}

/// f16 values as the GPU cache holds them: two per u32, element 2i in the low half.
fn packed(v: &[f16]) -> Vec<u8> {
    v.iter().flat_map(|h| h.to_bits().to_le_bytes()).collect()
}

/// One shape on one device: its caches, buffers and launcher, run for many steps.
struct Case {
    dims: AttnDims,
    k: Vec<f16>,
    v: Vec<f16>,
    q_buf: wgpu::Buffer,
    att_buf: wgpu::Buffer,
    table: StepTable,
    scratch: wgpu::Buffer,
    attn: Attention,
}

impl Case {
    fn new(
        gpu: &Gpu,
        (n_head, n_head_kv, head_dim, window): (u32, u32, u32, Option<u32>),
        rng: &mut Rng,
    ) -> Case {
        let dims = AttnDims {
            n_head,
            n_head_kv,
            head_dim,
            n_ctx: N_CTX,
            n_seq: N_SEQ,
            max_tokens: MAX_TOKENS,
            kq_scale: 1.0 / (head_dim as f32).sqrt(),
            window,
        };
        let cells = (N_SEQ * N_CTX * dims.kv_dim()) as usize;
        let k: Vec<f16> = rng.vec(cells).into_iter().map(f16::from_f32).collect();
        let v: Vec<f16> = rng.vec(cells).into_iter().map(f16::from_f32).collect();
        let k_buf = storage_buffer(gpu, "k cache", &packed(&k));
        let v_buf = storage_buffer(gpu, "v cache", &packed(&v));
        let rows = (MAX_TOKENS * dims.q_dim()) as usize;
        let q_buf = storage_buffer(gpu, "q", &vec![0u8; (Q_OFF as usize + rows) * 4]);
        let att_buf = storage_buffer(gpu, "att", &vec![0u8; (ATT_OFF as usize + rows + 3) * 4]);
        let tile_rows = Attention::tile_rows().expect("BQ");
        let table = StepTable::new(gpu, MAX_TOKENS, N_SEQ, tile_rows).expect("step table");
        let scratch_bytes = Attention::scratch_bytes(&dims).expect("scratch size");
        let scratch = storage_buffer(gpu, "attn scratch", &vec![0u8; scratch_bytes as usize]);
        let attn =
            Attention::new(gpu, &q_buf, Q_OFF, &k_buf, &v_buf, &att_buf, ATT_OFF, &table, &scratch, dims)
                .unwrap_or_else(|e| panic!("{dims:?}: {e}"));
        Case { dims, k, v, q_buf, att_buf, table, scratch, attn }
    }

    /// The plan of a step of `runs` (sequence, first position, tokens).
    fn plan(runs: &[(u32, u32, u32)]) -> StepPlan {
        let mut plan = StepPlan::new(Attention::tile_rows().expect("BQ"));
        for &(seq, pos0, n) in runs {
            plan.push(seq, pos0, &vec![0; n as usize], false);
        }
        plan
    }

    /// Runs `plan` with q random (×3, so the softmax is far from flat); returns (GPU, CPU) att.
    fn run(
        &self,
        gpu: &Gpu,
        readback: &mut Readback,
        plan: &StepPlan,
        rng: &mut Rng,
    ) -> (Vec<f32>, Vec<f32>) {
        let n = (plan.n_tokens() * self.dims.q_dim()) as usize;
        let q: Vec<f32> = rng.vec(n).into_iter().map(|x| 3.0 * x).collect();
        let at: Vec<(u32, u32)> = plan.at.iter().map(|&[s, p]| (s, p)).collect();
        let want = attention_cpu(&q, &self.k, &self.v, &at, self.dims).expect("CPU twin");
        gpu.queue().write_buffer(&self.q_buf, Q_OFF * 4, bytemuck::cast_slice(&q));
        let att_len = (self.att_buf.size() / 4) as usize;
        gpu.queue().write_buffer(&self.att_buf, 0, bytemuck::cast_slice(&vec![UNTOUCHED; att_len]));
        self.table.write(gpu, plan).expect("the plan fits the table");
        let mut enc = gpu.device().create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            self.attn.encode(&mut pass, plan).expect("step fits");
        }
        gpu.submit(enc, "attention test").expect("submit");
        let att = pollster::block_on(readback.read_f32(gpu, &self.att_buf, 0, att_len)).expect("read back");
        let (a, b) = (ATT_OFF as usize, ATT_OFF as usize + n);
        let outside = att[..a].iter().chain(&att[b..]).position(|&x| x != UNTOUCHED);
        assert!(
            outside.is_none(),
            "{:?} {:?}: wrote outside att[{a}..{b}] at {outside:?}",
            self.dims,
            plan.at
        );
        (att[a..b].to_vec(), want)
    }
}

/// Every shape and step on `gpu`; returns the worst NMSE. Collects failures before panicking.
fn check_all(gpu: &Gpu, label: &str) -> f64 {
    let mut rng = Rng::new(0xa77e);
    let mut readback =
        Readback::new(gpu, (ATT_OFF + 3 + (MAX_TOKENS * 8 * 256) as u64) * 4).expect("readback");
    let (mut worst, mut failures) = (0f64, Vec::new());
    for shape in SHAPES {
        let case = Case::new(gpu, shape, &mut rng);
        for runs in steps() {
            let plan = Case::plan(&runs);
            let chunks: Vec<u32> =
                plan.decode.iter().map(|&t| case.attn.decode_chunks(plan.at[t as usize][1])).collect();
            let what = format!(
                "{label} {shape:?} runs (sequence, first position, tokens) {runs:?} (decode chunks {chunks:?}, {})",
                case.attn.prefill_key()
            );
            let (got, want) = case.run(gpu, &mut readback, &plan, &mut rng);
            match std::panic::catch_unwind(|| assert_nmse(&got, &want, MAX_NMSE, &what)) {
                Ok(nmse) => worst = worst.max(nmse),
                Err(e) => failures.push(e.downcast_ref::<String>().cloned().unwrap_or(what)),
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    eprintln!("{label}: worst NMSE {worst:.2e}");
    worst
}

#[test]
fn attention_matches_cpu_with_the_best_reduction() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    eprintln!("adapter: {}", gpu.describe());
    check_all(&gpu, "default");
    // One prefill kernel, whatever the device's subgroups.
    assert!(gpu.pipeline_keys().contains(&"attn_prefill".to_string()), "{:?}", gpu.pipeline_keys());
}

#[test]
fn attention_matches_cpu_with_subgroups_forced_off() {
    let Some(gpu) = test_gpu(GpuOptions { no_subgroups: true, ..Default::default() }) else { return };
    assert!(!gpu.caps().subgroups);
    check_all(&gpu, "no-subgroups");
    assert!(gpu.pipeline_keys().contains(&"attn_prefill".to_string()), "{:?}", gpu.pipeline_keys());
}

#[test]
fn attention_matches_cpu_with_grouped_heads() {
    let Some(gpu) = test_gpu(GpuOptions { attn_grouped_min: Some(0), ..Default::default() }) else { return };
    check_all(&gpu, "grouped");
    // The shapes of 8 and 4 q heads a kv head group them; 3 (SmolLM2), 1 and 2 do not.
    let keys = gpu.pipeline_keys();
    let grouped: Vec<&String> = keys.iter().filter(|k| k.starts_with("attn_decode_gqa")).collect();
    assert_eq!(grouped, ["attn_decode_gqa_hd128", "attn_decode_gqa_hd256"], "{keys:?}");
}

/// The grouped decode kernel writes the same bits as one head a workgroup, for every shape's
/// decode steps (one and several chunks, windows, two sequences).
#[test]
fn grouped_heads_give_the_same_bits() {
    let (Some(one), Some(grouped)) = (
        test_gpu(GpuOptions { attn_grouped_min: Some(u32::MAX), ..Default::default() }),
        test_gpu(GpuOptions { attn_grouped_min: Some(0), ..Default::default() }),
    ) else {
        return;
    };
    for shape in SHAPES {
        let mut out = Vec::new();
        for gpu in [&one, &grouped] {
            let mut rng = Rng::new(0x9e0);
            let mut readback =
                Readback::new(gpu, (ATT_OFF + 3 + (MAX_TOKENS * 8 * 256) as u64) * 4).expect("readback");
            let case = Case::new(gpu, shape, &mut rng);
            let decodes =
                DECODE_KV.iter().map(|&n_kv| vec![(1, n_kv - 1, 1)]).chain([vec![(0, 6, 1), (1, 4099, 1)]]);
            out.push(
                decodes
                    .map(|runs| case.run(gpu, &mut readback, &Case::plan(&runs), &mut rng).0)
                    .collect::<Vec<_>>(),
            );
        }
        for (i, (a, b)) in out[0].iter().zip(&out[1]).enumerate() {
            let diff = a.iter().zip(b).position(|(x, y)| x.to_bits() != y.to_bits());
            assert!(diff.is_none(), "{shape:?} decode step {i}: element {diff:?} differs");
        }
    }
}

#[test]
fn long_decode_is_split_and_short_is_not() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let case = Case::new(&gpu, SHAPES[0], &mut Rng::new(1));
    assert_eq!(case.attn.decode_chunks(0), 1, "one cell, one chunk (no merge)");
    assert_eq!(case.attn.decode_chunks(255), 1, "256 cells (ATTN_ONE_CHUNK), one chunk");
    assert!(case.attn.decode_chunks(256) > 1, "257 cells: {} chunks", case.attn.decode_chunks(256));
    assert!(case.attn.decode_chunks(4099) > 8, "4100 cells: {} chunks", case.attn.decode_chunks(4099));
    // A window caps the cells, whatever the position.
    let windowed = Case::new(&gpu, SHAPES[4], &mut Rng::new(2));
    assert_eq!(windowed.attn.decode_chunks(4099), 1);
}

#[test]
fn bad_dims_and_steps_are_errors() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let case = Case::new(&gpu, SHAPES[0], &mut Rng::new(3));
    let mut enc = gpu.device().create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        // Past the context, past the step's rows, a sequence that is not there, and a decode token
        // per sequence too many.
        let bad: [&[(u32, u32, u32)]; 4] = [
            &[(0, N_CTX - 2, 3)],
            &[(0, 0, MAX_TOKENS + 1)],
            &[(N_SEQ, 0, 1)],
            &[(0, 0, 1), (1, 0, 1), (0, 3, 1)],
        ];
        for runs in bad {
            let got = case.attn.encode(&mut pass, &Case::plan(runs));
            assert!(matches!(got, Err(Error::GpuAttention { .. })), "{runs:?}: {got:?}");
        }
    }
    drop(enc);
    let dims = *case.attn.dims();
    let new = |k: &wgpu::Buffer, v: &wgpu::Buffer, dims| {
        Attention::new(&gpu, &case.q_buf, 0, k, v, &case.att_buf, 0, &case.table, &case.scratch, dims)
    };
    for bad in [
        AttnDims { head_dim: 60, ..dims },
        AttnDims { head_dim: 264, ..dims },
        AttnDims { n_head_kv: 2, ..dims },
        AttnDims { window: Some(0), ..dims },
        AttnDims { n_seq: 0, ..dims },
    ] {
        assert!(new(&case.q_buf, &case.q_buf, bad).is_err(), "{bad:?} was accepted");
    }
    // A cache too small for n_seq regions of n_ctx rows, and too many sequences for the table.
    let small = storage_buffer(&gpu, "small", &[0; 64]);
    let got = new(&small, &small, dims);
    assert!(matches!(got, Err(Error::LengthMismatch { .. })), "{:?}", got.err());
    let big = storage_buffer(&gpu, "k", &vec![0; (4 * N_CTX * dims.kv_dim() * 2) as usize]);
    let scratch = storage_buffer(
        &gpu,
        "s",
        &vec![0; Attention::scratch_bytes(&AttnDims { n_seq: 4, ..dims }).unwrap() as usize],
    );
    let got = Attention::new(
        &gpu,
        &case.q_buf,
        0,
        &big,
        &big,
        &case.att_buf,
        0,
        &case.table,
        &scratch,
        AttnDims { n_seq: 4, ..dims },
    );
    assert!(matches!(got, Err(Error::GpuAttention { .. })), "{:?}", got.err());
}

#[test]
#[should_panic(expected = "NMSE")]
fn nan_fails_the_check() {
    assert_nmse(&[1.0, f32::NAN], &[1.0, 2.0], MAX_NMSE, "NaN");
}
