//! The embedding lookup (`shaders/get_rows.wgsl` after each `dequant_<type>.wgsl`) against its CPU
//! twin (`quant::dequantize` of the row, times the scale), on whatever adapter this machine has.
//!
//! Every type with a decoder, so this is also the exactness test of the 13 decoders: the GPU must
//! reproduce the CPU's dequantization to rounding (NMSE ≤ 1e-12). Odd float widths, weights both
//! quantized and made of random bytes, repeated and out-of-range ids, a y offset, fewer tokens
//! than the buffers hold, and a table split into pieces by a small binding limit.
//!
//! No adapter = failure, unless `AETHER_NO_GPU=1` (see `aether_tests::gpu`).

use aether_core::gpu::{GetRows, Gpu, GpuOptions, GpuTensor, Step, StepBuffer, get_rows_cpu, shaders};
use aether_core::quant::GgmlType;
use aether_tests::gpu::{Rng, assert_nmse, test_gpu, weights};

const UNTOUCHED: f32 = 12345.0;
const MAX_NMSE: f64 = 1e-12;

/// Looks up `ids` on the GPU (buffers for `max_tokens`, y at `y_off`); returns the whole y buffer
/// and the pipeline key.
fn gpu_get_rows(
    gpu: &Gpu,
    w: &GpuTensor,
    ids: &[u32],
    max_tokens: u32,
    y_off: usize,
    scale: f32,
) -> aether_core::Result<(Vec<f32>, String)> {
    let ids_buf = gpu.storage("ids", max_tokens as u64 * 4)?;
    gpu.queue().write_buffer(&ids_buf, 0, bytemuck::cast_slice(ids));
    let y_len = y_off + max_tokens as usize * w.cols as usize;
    let y = gpu.storage("y", y_len as u64 * 4)?;
    gpu.queue().write_buffer(&y, 0, bytemuck::cast_slice(&vec![UNTOUCHED; y_len]));
    let step = StepBuffer::new(gpu)?;
    step.write(gpu, Step::new(0, ids.len() as u32));
    let op = GetRows::new(gpu, w, &ids_buf, &y, y_off as u64, scale, &step, max_tokens)?;
    let mut enc = gpu.device().create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        op.encode(&mut pass, ids.len() as u32);
    }
    gpu.submit(enc, "get_rows test")?;
    Ok((pollster::block_on(gpu.read_f32(&y, 0, y_len))?, op.key().to_string()))
}

fn cols_for(ty: GgmlType) -> Vec<usize> {
    match ty.block_size() {
        1 => vec![6, 33, 578],
        32 => vec![32, 96, 576],
        _ => vec![256, 768],
    }
}

fn check(
    gpu: &Gpu,
    label: &str,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    raw: bool,
    rng: &mut Rng,
) -> Result<String, String> {
    let what = format!("{label} {ty} rows={rows} cols={cols} raw={raw}");
    let bytes = weights(ty, rows, cols, raw, rng);
    // Repeats, first and last rows, and one id past the table (zeros).
    let mut ids: Vec<u32> = (0..9).map(|_| (rng.next_u64() % rows as u64) as u32).collect();
    ids.extend([0, rows as u32 - 1, rows as u32 + 3, ids[2]]);
    let (max_tokens, y_off, scale) = (ids.len() as u32 + 3, 7, 1.5f32);
    let mut want = vec![0f32; ids.len() * cols];
    get_rows_cpu(ty, &bytes, cols, &ids, &mut want, scale).map_err(|e| format!("{what}: CPU twin: {e}"))?;
    let (y, key) = GpuTensor::upload(gpu, "token_embd", ty, cols as u64, rows as u64, &bytes, &mut |_, _| {})
        .and_then(|w| gpu_get_rows(gpu, &w, &ids, max_tokens, y_off, scale))
        .map_err(|e| format!("{what}: {e}"))?;
    let end = y_off + ids.len() * cols;
    if y[..y_off].iter().chain(&y[end..]).any(|&v| v != UNTOUCHED) {
        return Err(format!("{what}: wrote outside y[{y_off}..{end}]"));
    }
    std::panic::catch_unwind(|| assert_nmse(&y[y_off..end], &want, MAX_NMSE, &what))
        .map_err(|e| e.downcast_ref::<String>().cloned().unwrap_or_default())?;
    Ok(key)
}

#[test]
fn get_rows_matches_dequantize_for_every_type() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let mut rng = Rng::new(0xe3bd);
    let mut failures = Vec::new();
    let mut keys = Vec::new();
    for ty in shaders::DECODER_TYPES {
        for cols in cols_for(ty) {
            for raw in [false, true] {
                match check(&gpu, "default", ty, 21, cols, raw, &mut rng) {
                    Ok(k) if !keys.contains(&k) => keys.push(k),
                    Ok(_) => {}
                    Err(e) => failures.push(e),
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(keys.len(), shaders::DECODER_TYPES.len(), "{keys:?}");
    assert!(keys.contains(&"get_rows_q4_k".to_string()), "{keys:?}");
}

#[test]
fn get_rows_reads_every_piece_of_a_split_table() {
    const LIMIT: u64 = 2048;
    let Some(gpu) = test_gpu(GpuOptions { max_storage_binding: Some(LIMIT), ..Default::default() }) else {
        return;
    };
    let mut rng = Rng::new(17);
    // Q4_K 432-byte rows (4 per piece), Q6_K 210-byte rows off word boundaries, F16 66-byte rows.
    let mut failures = Vec::new();
    for (ty, rows, cols) in [(GgmlType::Q4K, 33, 768), (GgmlType::Q6K, 23, 256), (GgmlType::F16, 70, 33)] {
        assert!(
            ty.row_bytes(cols as u64).expect("whole blocks") * rows as u64 > 2 * LIMIT,
            "{ty}: not split"
        );
        if let Err(e) = check(&gpu, "split", ty, rows, cols, true, &mut rng) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
