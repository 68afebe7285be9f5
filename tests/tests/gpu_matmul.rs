//! The tiled product (`shaders/matmul.wgsl` after each `dequant_<type>.wgsl`) against its CPU twin
//! (`quant::dot` per token and row), on whatever adapter this machine has.
//!
//! Every type with a decoder; row counts that are not multiples of the 64-row tile (7, 33, 65);
//! token counts below, at and past one 64-token tile (1, 5, 64, 130) with buffers for more; float
//! widths that end inside a 4-column quad and a 32-column step (34, 578); x and y offsets; weights
//! both quantized and made of random bytes; and a tensor split into pieces by a small binding
//! limit, whose pieces must fill one output.
//!
//! No adapter = failure, unless `AETHER_NO_GPU=1` (see `aether_tests::gpu`).

use aether_core::gpu::{Gpu, GpuOptions, GpuTensor, MatMul, Step, StepBuffer, matmul_cpu, shaders};
use aether_core::quant::GgmlType;
use aether_tests::gpu::{Rng, assert_nmse, test_gpu, weights};

const UNTOUCHED: f32 = 12345.0;

/// Worst NMSE accepted (the task's bound for matrix ops); f32 sums in another order than the
/// CPU's land near 1e-13, a wrong scale or index anywhere near 1e-2.
const MAX_NMSE: f64 = 5e-4;

/// Y = W·Xᵀ on the GPU for `n_tokens` tokens of X (buffers for `max_tokens`, x at `x_off`, y at
/// `y_off`); returns the whole y buffer and the pipeline key.
fn gpu_matmul(
    gpu: &Gpu,
    w: &GpuTensor,
    x: &[f32],
    n_tokens: u32,
    max_tokens: u32,
    (x_off, y_off): (usize, usize),
) -> aether_core::Result<(Vec<f32>, String)> {
    let xb = gpu.storage("x", (x_off + max_tokens as usize * w.cols as usize) as u64 * 4)?;
    gpu.queue().write_buffer(&xb, x_off as u64 * 4, bytemuck::cast_slice(x));
    let y_len = y_off + max_tokens as usize * w.rows as usize;
    let yb = gpu.storage("y", y_len as u64 * 4)?;
    gpu.queue().write_buffer(&yb, 0, bytemuck::cast_slice(&vec![UNTOUCHED; y_len]));
    let step = StepBuffer::new(gpu)?;
    step.write(gpu, Step::new(0, n_tokens));
    let op = MatMul::new(gpu, w, &xb, x_off as u64, &yb, y_off as u64, &step, max_tokens)?;
    let mut enc = gpu.device().create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        op.encode(&mut pass, n_tokens);
    }
    gpu.submit(enc, "matmul test")?;
    Ok((pollster::block_on(gpu.read_f32(&yb, 0, y_len))?, op.key().to_string()))
}

/// Runs one case; `Err` says what differed.
fn check(
    gpu: &Gpu,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    n_tokens: usize,
    raw: bool,
    rng: &mut Rng,
) -> Result<(f64, String), String> {
    let what = format!("{ty} rows={rows} cols={cols} n_tokens={n_tokens} raw={raw}");
    let bytes = weights(ty, rows, cols, raw, rng);
    let x = rng.vec(n_tokens * cols);
    let want = matmul_cpu(ty, &bytes, &x, n_tokens, cols).map_err(|e| format!("{what}: CPU twin: {e}"))?;
    let (offs, max_tokens) = ((3, 5), n_tokens as u32 + 2);
    let (y, key) = GpuTensor::upload(gpu, "w", ty, cols as u64, rows as u64, &bytes, &mut |_, _| {})
        .and_then(|w| gpu_matmul(gpu, &w, &x, n_tokens as u32, max_tokens, offs))
        .map_err(|e| format!("{what}: {e}"))?;
    let (y_off, end) = (offs.1, offs.1 + n_tokens * rows);
    if y[..y_off].iter().chain(&y[end..]).any(|&v| v != UNTOUCHED) {
        return Err(format!("{what}: wrote outside y[{y_off}..{end}]"));
    }
    let nmse = std::panic::catch_unwind(|| assert_nmse(&y[y_off..end], &want, MAX_NMSE, &what))
        .map_err(|e| e.downcast_ref::<String>().cloned().unwrap_or_default())?;
    Ok((nmse, key))
}

#[test]
fn matmul_matches_cpu_for_every_type() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    eprintln!("adapter: {}", gpu.describe());
    let mut rng = Rng::new(0x3a7);
    let mut failures = Vec::new();
    let mut keys = Vec::new();
    for ty in shaders::DECODER_TYPES {
        let widths: &[usize] = match ty.block_size() {
            1 => &[34, 578],
            32 => &[96, 544],
            _ => &[256, 768],
        };
        let mut worst = 0f64;
        let mut case = 0;
        for rows in [7, 33, 65] {
            for n_tokens in [1, 5, 64, 130] {
                case += 1;
                let (cols, raw) = (widths[case % widths.len()], case % 3 == 0);
                match check(&gpu, ty, rows, cols, n_tokens, raw, &mut rng) {
                    Ok((nmse, key)) => {
                        worst = worst.max(nmse);
                        if !keys.contains(&key) {
                            keys.push(key);
                        }
                    }
                    Err(e) => failures.push(e),
                }
            }
        }
        eprintln!("{ty}: worst NMSE {worst:.2e}");
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(keys.len(), shaders::DECODER_TYPES.len(), "{keys:?}");
    assert!(keys.contains(&"matmul_q4_k".to_string()), "{keys:?}");
}

#[test]
fn matmul_pieces_fill_one_output() {
    const LIMIT: u64 = 2048;
    let Some(gpu) = test_gpu(GpuOptions { max_storage_binding: Some(LIMIT), ..Default::default() }) else {
        return;
    };
    let mut rng = Rng::new(29);
    let mut failures = Vec::new();
    // Q4_K: 432-byte rows, 4 per piece; Q8_0: 102-byte rows; Q6_K: 210-byte rows; F16: 68-byte rows.
    for (ty, rows, cols, n_tokens) in [
        (GgmlType::Q4K, 65, 768, 5),
        (GgmlType::Q8_0, 70, 96, 64),
        (GgmlType::Q6K, 33, 256, 130),
        (GgmlType::F16, 75, 34, 7),
    ] {
        assert!(
            ty.row_bytes(cols as u64).expect("whole blocks") * rows as u64 > 2 * LIMIT,
            "{ty}: not split"
        );
        if let Err(e) = check(&gpu, ty, rows, cols, n_tokens, true, &mut rng) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// NaN in the output must fail the comparison (a kernel that reads garbage must not pass).
#[test]
#[should_panic(expected = "NMSE")]
fn nan_fails_the_comparison() {
    assert_nmse(&[1.0, f32::NAN], &[1.0, 2.0], MAX_NMSE, "NaN");
}
