//! The tensor-core product (`shaders/matmul_coop.wgsl` after each `dequant_<type>.wgsl`, chosen by
//! `MatMul` where `Caps::coop_matrix`) against its CPU twin (`quant::dot` per token and row).
//!
//! Only adapters with cooperative matrices run it (a native GPU with 16×16×16 f16 tiles and
//! subgroups of 32); elsewhere — lavapipe in CI, browsers — each test prints a note and passes,
//! since there the portable kernel is the one `tests/tests/gpu_matmul.rs` checks.
//!
//! Every type with a decoder; row counts below, between and past the 128-row tile (7, 130, 300);
//! token counts 1, 17, 64 and 100 (one partial tile, one full, one and a half) with buffers for
//! more; widths that end inside a 32-column step (float types: 34, 578); x and y offsets; random
//! weight bytes as well as quantized ones; a row-split tensor; X at an odd element and at a
//! 16-byte one, where Q4_K takes its own kernel (`matmul_coop_q4_k.wgsl`). Each with split-K as `MatMul`
//! plans it (these few-tile tensors split their columns up to 16 ways, summed by
//! `matmul_reduce.wgsl`) and with it turned off (`GpuOptions::split_target = 0`); steps past
//! `SPLIT_TOKENS` run unsplit, and a row-split tensor splits into the shared scratch at its rows.
//! The operands are rounded to f16, so the bound is the matrix ops' NMSE 5e-4 (f16 rounding gives
//! ~1e-7); NaN fails.
//!
//! No adapter at all = failure, unless `AETHER_NO_GPU=1` (see `aether_tests::gpu`).

use aether_core::gpu::{Gpu, GpuOptions, GpuTensor, MatMul, Step, StepBuffer, matmul_cpu, shaders};
use aether_core::quant::GgmlType;
use aether_tests::gpu::{Rng, assert_nmse, test_gpu, weights};

const UNTOUCHED: f32 = 12345.0;
const MAX_NMSE: f64 = 5e-4;

/// The device if it has cooperative matrices; else prints why the test is skipped.
fn coop_gpu(opts: GpuOptions) -> Option<Gpu> {
    let gpu = test_gpu(opts)?;
    if !gpu.caps().coop_matrix {
        eprintln!("NOTE: no cooperative matrices on {} — matmul_coop NOT tested here", gpu.describe());
        return None;
    }
    eprintln!("adapter: {}", gpu.describe());
    Some(gpu)
}

/// What one case ran: NMSE, pipeline key, column splits, staged chunks (0: unstaged).
type Ran = (f64, String, u32, usize);

/// Y = W·Xᵀ for `n_tokens` tokens (buffers for `n_tokens + 2`, x at element `x_off`, y at 5);
/// checks nothing outside Y's rows was written and returns what ran, or what differed.
fn check(
    gpu: &Gpu,
    ty: GgmlType,
    (rows, cols, n_tokens): (usize, usize, usize),
    (raw, x_off): (bool, usize),
    rng: &mut Rng,
) -> Result<Ran, String> {
    let what = format!("{ty} rows={rows} cols={cols} n_tokens={n_tokens} raw={raw} x_off={x_off}");
    let bytes = weights(ty, rows, cols, raw, rng);
    let x = rng.vec(n_tokens * cols);
    let want = matmul_cpu(ty, &bytes, &x, n_tokens, cols).map_err(|e| format!("{what}: CPU twin: {e}"))?;
    let (y_off, max_tokens) = (5usize, n_tokens as u32 + 2);
    let run = || -> aether_core::Result<(Vec<f32>, String, u32, usize)> {
        let w = GpuTensor::upload(gpu, "w", ty, cols as u64, rows as u64, &bytes, &mut |_, _| {})?;
        let xb = gpu.storage("x", (x_off + max_tokens as usize * cols) as u64 * 4)?;
        gpu.queue().write_buffer(&xb, x_off as u64 * 4, bytemuck::cast_slice(&x));
        let y_len = y_off + max_tokens as usize * rows;
        let yb = gpu.storage("y", y_len as u64 * 4)?;
        gpu.queue().write_buffer(&yb, 0, bytemuck::cast_slice(&vec![UNTOUCHED; y_len]));
        let step = StepBuffer::new(gpu)?;
        step.write(gpu, Step::new(0, n_tokens as u32));
        let op = MatMul::new(gpu, &w, &xb, x_off as u64, &yb, y_off as u64, &step, max_tokens)?;
        let mut enc = gpu.device().create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            op.encode(&mut pass, n_tokens as u32);
        }
        gpu.submit(enc, "matmul_coop test")?;
        let splits = op.splits(n_tokens as u32);
        let chunks = op.staged_chunks(n_tokens as u32);
        Ok((pollster::block_on(gpu.read_f32(&yb, 0, y_len))?, op.key().to_string(), splits, chunks))
    };
    let (y, key, splits, chunks) = run().map_err(|e| format!("{what}: {e}"))?;
    let what = format!("{what} splits={splits} staged chunks={chunks}");
    let end = y_off + n_tokens * rows;
    if let Some(i) = (0..y_off).chain(end..y.len()).find(|&i| y[i] != UNTOUCHED) {
        return Err(format!("{what}: wrote y[{i}] = {} outside y[{y_off}..{end}]", y[i]));
    }
    let nmse = std::panic::catch_unwind(|| assert_nmse(&y[y_off..end], &want, MAX_NMSE, &what))
        .map_err(|e| e.downcast_ref::<String>().cloned().unwrap_or_default())?;
    Ok((nmse, key, splits, chunks))
}

#[test]
fn matmul_coop_matches_cpu_for_every_type() {
    let Some(gpu) = coop_gpu(GpuOptions::default()) else { return };
    let Some(unsplit) = coop_gpu(GpuOptions { split_target: Some(0), ..Default::default() }) else {
        return;
    };
    let Some(unstaged) = coop_gpu(GpuOptions { no_gemm: true, ..Default::default() }) else { return };
    assert!(gpu.caps().gemm && !unstaged.caps().gemm, "{}", gpu.describe());
    let mut rng = Rng::new(0xc00b);
    let mut failures = Vec::new();
    let mut keys = Vec::new();
    let mut most_splits = [0u32; 3];
    let mut staged = [0usize; 3];
    for ty in shaders::DECODER_TYPES {
        let widths: &[usize] = match ty.block_size() {
            1 => &[34, 578],
            32 => &[96, 544],
            _ => &[256, 768],
        };
        let mut worst = 0f64;
        let mut case = 0;
        for rows in [7, 130, 300] {
            for n_tokens in [1, 17, 64, 100, 150, 300] {
                case += 1;
                let (cols, raw) = (widths[case % widths.len()], case % 3 == 0);
                // X at an odd element and at a 16-byte one (a typed kernel needs the latter).
                let x_off = 3 + case % 2;
                for (i, g) in [&gpu, &unsplit, &unstaged].into_iter().enumerate() {
                    match check(g, ty, (rows, cols, n_tokens), (raw, x_off), &mut rng) {
                        Ok((nmse, key, splits, chunks)) => {
                            worst = worst.max(nmse);
                            most_splits[i] = most_splits[i].max(splits);
                            staged[i] += (chunks > 0) as usize;
                            if !keys.contains(&key) {
                                keys.push(key);
                            }
                        }
                        Err(e) => failures.push(e),
                    }
                }
            }
        }
        eprintln!("{ty}: worst NMSE {worst:.2e}");
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    // Every type's decoded kernel, and Q4_K's own kernel where X is 16-byte aligned.
    assert_eq!(keys.len(), shaders::DECODER_TYPES.len() + 1, "{keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("matmul_coop_")), "not the coop kernel: {keys:?}");
    assert!(keys.iter().any(|k| k == "matmul_coop_typed_q4_k"), "{keys:?}");
    // Planned splits (768 columns = 24 steps: 6 ways; Q4_K's own kernel 3, a block each) and none
    // with split-K off; every step
    // past SPLIT_TOKENS staged (2 of 6 token counts × 3 row counts per type), none with it off.
    assert_eq!(most_splits, [6, 1, 6], "most column splits (planned, off, unstaged)");
    let per_device = 6 * shaders::DECODER_TYPES.len();
    assert_eq!(staged, [per_device, per_device, 0], "staged steps (planned, unsplit, off)");
}

/// A llama-sized width (many steps of the column loop) and a tensor split by a small binding
/// limit, whose pieces must fill one output.
#[test]
fn matmul_coop_long_rows_and_pieces() {
    let mut rng = Rng::new(77);
    let mut failures = Vec::new();
    // (binding limit, type, rows, cols, tokens, splits expected): 64 KiB leaves the scratch room
    // for 0, 2 and 18 splits of these steps' tokens (the last capped by the width); at 1 MiB the Q4_K tensor is two pieces (455 + 65 rows) and splits 4 ways for
    // 102 tokens of buffers, 3 for 130 (the scratch holds 128 tokens), none past 128.
    for (limit, cases) in [
        (
            64 << 10,
            &[
                (GgmlType::Q4K, 520, 4096, 100, 1),
                (GgmlType::Q6K, 300, 2048, 17, 2),
                (GgmlType::Q8_0, 200, 1024, 64, 1),
                (GgmlType::F16, 130, 578, 5, 4),
            ][..],
        ),
        (
            1 << 20,
            &[
                (GgmlType::Q4K, 520, 4096, 100, 4),
                (GgmlType::Q4K, 520, 4096, 128, 3),
                (GgmlType::Q4K, 520, 4096, 150, 1),
                (GgmlType::Q6K, 300, 2048, 3, 16),
            ][..],
        ),
    ] {
        let opts = GpuOptions { max_storage_binding: Some(limit), ..Default::default() };
        let Some(gpu) = coop_gpu(opts) else { return };
        // Q4_K also with X 16-byte aligned: its own kernel, whose splits are whole blocks (these
        // plans are bound by the scratch, so the same).
        let runs = cases.iter().flat_map(|&c| {
            let typed = (c.0 == GgmlType::Q4K).then_some((c, 4));
            [Some((c, 3)), typed].into_iter().flatten()
        });
        for ((ty, rows, cols, n_tokens, want_splits), x_off) in runs {
            let what = format!("{ty} {rows}x{cols} tokens={n_tokens} x_off={x_off} binding {limit}");
            match check(&gpu, ty, (rows, cols, n_tokens), (false, x_off), &mut rng) {
                Ok((_, key, _, _)) if (key == "matmul_coop_typed_q4_k") != (x_off == 4) => {
                    failures.push(format!("{what}: ran {key}"))
                }
                Ok((nmse, key, splits, _)) if splits == want_splits => {
                    eprintln!("{what}: {key} splits={splits}: NMSE {nmse:.2e}")
                }
                Ok((_, _, splits, _)) => {
                    failures.push(format!("{what}: {splits} splits, expected {want_splits}"))
                }
                Err(e) => failures.push(e),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The staged product in chunks: a 1 MiB binding limit caps the staging buffer, so a tall tensor
/// is staged a chunk of rows at a time, and a row-split one chunk by chunk within each piece,
/// every chunk writing its rows of the one output.
#[test]
fn staged_matmul_in_chunks_and_pieces() {
    let Some(gpu) = coop_gpu(GpuOptions { max_storage_binding: Some(1 << 20), ..Default::default() }) else {
        return;
    };
    let mut rng = Rng::new(78);
    let mut failures = Vec::new();
    // 4000 × 256 Q4_K: one piece; X region 256 tokens × 512 bytes, room for 1792 rows: 3 chunks
    // of 1408, 1408, 1184. 9000 × 256 Q8_0 (2.4 MB): pieces of under 3856 rows, each in chunks
    // of at most 1664 rows (X region for 384 tokens): more chunks than pieces.
    for (ty, rows, n_tokens, want) in [(GgmlType::Q4K, 4000, 130, 3..=3), (GgmlType::Q8_0, 9000, 300, 4..=12)]
    {
        match check(&gpu, ty, (rows, 256, n_tokens), (false, 3), &mut rng) {
            Ok((nmse, _, _, chunks)) if want.contains(&chunks) => {
                eprintln!("{ty} {rows}x256 tokens={n_tokens}: {chunks} chunks, NMSE {nmse:.2e}")
            }
            Ok((_, _, _, chunks)) => {
                failures.push(format!("{ty} {rows}: {chunks} chunks, expected {want:?}"))
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The portable kernel stays selectable on a device with cooperative matrices.
#[test]
fn no_coop_matrix_option_turns_it_off() {
    let Some(gpu) = test_gpu(GpuOptions { no_coop_matrix: true, ..Default::default() }) else { return };
    assert!(!gpu.caps().coop_matrix, "{}", gpu.describe());
}

/// NaN in the output must fail the comparison.
#[test]
#[should_panic(expected = "NMSE")]
fn nan_fails_the_comparison() {
    assert_nmse(&[1.0, f32::NAN], &[1.0, 2.0], MAX_NMSE, "NaN");
}

/// A kernel that reads the weights itself (declares binding 0, as Q4_K's own does) is refused
/// with a clear error for a type it was not written for, or for X off a 16-byte boundary, before
/// anything is compiled; any adapter.
#[test]
fn a_typed_kernel_is_refused_for_another_type_or_unaligned_x() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let typed = shaders::source("matmul_coop_q4_k.wgsl").expect("in ALL");
    let mut rng = Rng::new(9);
    for (ty, x_off) in [(GgmlType::Q8_0, 0u64), (GgmlType::Q4K, 2)] {
        let (rows, cols, tokens) = (8usize, 256usize, 4u32);
        let bytes = weights(ty, rows, cols, false, &mut rng);
        let w = GpuTensor::upload(&gpu, "w", ty, cols as u64, rows as u64, &bytes, &mut |_, _| {})
            .expect("upload");
        let xb = gpu.storage("x", (x_off as usize + tokens as usize * cols) as u64 * 4).expect("x");
        let yb = gpu.storage("y", (tokens as usize * rows) as u64 * 4).expect("y");
        let step = StepBuffer::new(&gpu).expect("step");
        let got = MatMul::with_source(&gpu, &w, (&xb, x_off), (&yb, 0), &step, tokens, "typed", typed);
        let err = got.err().unwrap_or_else(|| panic!("{ty} x_off {x_off}: accepted"));
        assert!(err.to_string().contains("reads the weights itself"), "{ty} x_off {x_off}: {err}");
    }
}

/// A fused tensor's product (`MatMul::new_parts`: q|k|v's three parts, gate|up's two) writes each
/// part's rows to its own region of y, `[tokens, part rows]` from the part's offset, as the
/// parts' own products would, and nothing else: Q4_K (its own kernel) and Q8_0 (the generic one),
/// steps of 17 and 64 tokens.
#[test]
fn fused_parts_land_in_their_regions() {
    let Some(gpu) = coop_gpu(GpuOptions::default()) else { return };
    let mut rng = Rng::new(23);
    let cases: [(GgmlType, &[usize]); 3] =
        [(GgmlType::Q4K, &[256, 128, 128]), (GgmlType::Q8_0, &[300, 44, 44]), (GgmlType::Q4K, &[384, 384])];
    let gpu = &gpu;
    for (ty, part_rows) in cases {
        for n_tokens in [17usize, 64] {
            let (cols, max_tokens) = (512usize, 70u32);
            let rows: usize = part_rows.iter().sum();
            let what = format!("{ty} parts {part_rows:?} n_tokens={n_tokens}");
            let bytes = weights(ty, rows, cols, false, &mut rng);
            let x = rng.vec(n_tokens * cols);
            let want = matmul_cpu(ty, &bytes, &x, n_tokens, cols).expect("CPU twin");
            // Regions one after another with a gap of 3 before each.
            let mut parts = Vec::new();
            let mut at = 0u64;
            for &r in part_rows {
                at += 3;
                parts.push((r as u64, at));
                at += max_tokens as u64 * r as u64;
            }
            let y_len = at as usize + 3;
            let w = GpuTensor::upload(gpu, "w", ty, cols as u64, rows as u64, &bytes, &mut |_, _| {})
                .expect("upload");
            let xb = gpu.storage("x", (max_tokens as usize * cols) as u64 * 4).expect("x");
            gpu.queue().write_buffer(&xb, 0, bytemuck::cast_slice(&x));
            let yb = gpu.storage("y", y_len as u64 * 4).expect("y");
            gpu.queue().write_buffer(&yb, 0, bytemuck::cast_slice(&vec![UNTOUCHED; y_len]));
            let step = StepBuffer::new(gpu).expect("step");
            step.write(gpu, Step::new(0, n_tokens as u32));
            let op = MatMul::new_parts(gpu, &w, (&xb, 0), &yb, &parts, &step, max_tokens)
                .expect(&what)
                .unwrap_or_else(|| panic!("{what}: no fused product"));
            assert!(op.splits(n_tokens as u32) >= 2, "{what}: a fused product always splits");
            let mut enc = gpu.device().create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                op.encode(&mut pass, n_tokens as u32);
            }
            gpu.submit(enc, "fused parts test").expect(&what);
            let y = pollster::block_on(gpu.read_f32(&yb, 0, y_len)).expect("read y");
            let (mut got, mut expect, mut written) = (Vec::new(), Vec::new(), vec![false; y_len]);
            let mut first = 0;
            for &(r, off) in &parts {
                let (r, off) = (r as usize, off as usize);
                for t in 0..n_tokens {
                    for i in 0..r {
                        got.push(y[off + t * r + i]);
                        expect.push(want[t * rows + first + i]);
                        written[off + t * r + i] = true;
                    }
                }
                first += r;
            }
            if let Some(i) = (0..y_len).find(|&i| !written[i] && y[i] != UNTOUCHED) {
                panic!("{what}: wrote y[{i}] outside the parts' rows of the step");
            }
            assert_nmse(&got, &expect, MAX_NMSE, &what);
        }
    }
}

/// A projection into the residual stream (`MatMul::new_residual`): a split step's reduce adds the
/// product to the stream itself (and says so: the add kernel is left out), Y untouched; a step
/// past `SPLIT_TOKENS` writes Y as `MatMul::new` does and leaves the stream to the caller.
#[test]
fn residual_projection_adds_on_split_steps() {
    let Some(gpu) = coop_gpu(GpuOptions::default()) else { return };
    let mut rng = Rng::new(31);
    let (ty, rows, cols, max_tokens) = (GgmlType::Q4K, 256usize, 1024usize, 140u32);
    let bytes = weights(ty, rows, cols, false, &mut rng);
    let w =
        GpuTensor::upload(&gpu, "w", ty, cols as u64, rows as u64, &bytes, &mut |_, _| {}).expect("upload");
    for n_tokens in [17usize, 64, 140] {
        let what = format!("{ty} {rows}x{cols} n_tokens={n_tokens}");
        let x = rng.vec(n_tokens * cols);
        let want = matmul_cpu(ty, &bytes, &x, n_tokens, cols).expect("CPU twin");
        let stream: Vec<f32> = rng.vec(max_tokens as usize * rows);
        let xb = gpu.storage("x", (max_tokens as usize * cols) as u64 * 4).expect("x");
        gpu.queue().write_buffer(&xb, 0, bytemuck::cast_slice(&x));
        let y_len = max_tokens as usize * rows;
        let yb = gpu.storage("y", y_len as u64 * 4).expect("y");
        gpu.queue().write_buffer(&yb, 0, bytemuck::cast_slice(&vec![UNTOUCHED; y_len]));
        let rb = gpu.storage("r", y_len as u64 * 4).expect("r");
        gpu.queue().write_buffer(&rb, 0, bytemuck::cast_slice(&stream));
        let step = StepBuffer::new(&gpu).expect("step");
        step.write(&gpu, Step::new(0, n_tokens as u32));
        let op = MatMul::new_residual(&gpu, &w, (&xb, 0), (&yb, 0), &rb, &step, max_tokens).expect(&what);
        let mut enc = gpu.device().create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            op.encode(&mut pass, n_tokens as u32);
        }
        gpu.submit(enc, "residual test").expect(&what);
        let y = pollster::block_on(gpu.read_f32(&yb, 0, y_len)).expect("read y");
        let r = pollster::block_on(gpu.read_f32(&rb, 0, y_len)).expect("read r");
        let n = n_tokens * rows;
        let split = op.splits(n_tokens as u32) > 1;
        assert_eq!(op.adds_to_residual(n_tokens as u32), split, "{what}");
        if split {
            assert!(y.iter().all(|&v| v == UNTOUCHED), "{what}: a split step wrote Y");
            assert_eq!(r[n..], stream[n..], "{what}: rows past the step changed");
            let got: Vec<f32> = r[..n].iter().zip(&stream).map(|(a, b)| a - b).collect();
            assert_nmse(&got, &want, MAX_NMSE, &format!("{what} (added)"));
        } else {
            assert_eq!(r, stream, "{what}: an unsplit step changed the stream");
            assert_nmse(&y[..n], &want, MAX_NMSE, &format!("{what} (written)"));
        }
    }
}
