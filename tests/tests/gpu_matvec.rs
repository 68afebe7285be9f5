//! The mat-vec kernels (`shaders/matvec_*.wgsl`) against their CPU twin (`quant::dot` per row), on
//! whatever adapter this machine has: lavapipe in CI, the real GPU elsewhere.
//!
//! Every type, both reductions (subgroups, and workgroup memory with subgroups forced off), both
//! workgroup geometries (256 invocations for GPUs, 16 for software adapters), odd
//! row counts (1, 7, 33 — not multiples of the 4 rows per workgroup), a row of 56 K-blocks (not a
//! multiple of the 16 blocks in flight), odd float row lengths (2-byte aligned f16 rows), x and y
//! offsets, and weights both quantized from random values and made of random bytes. Also: a
//! tensor split across buffers by a forced small binding limit, errors coming back as `Error`s.
//!
//! The Q4_1, Q4_K, Q6_K and Q8_0 kernels take x as packed 8-bit levels (`packed_input`): they get the
//! CPU's own quantization of x (`act_pack_cpu`), and their twin multiplies the same levels
//! (`act_quant_cpu`, the quantized x back in f32).
//!
//! No adapter = failure, unless `AETHER_NO_GPU=1` (see `aether_tests::gpu`).

use aether_core::Error;
use aether_core::gpu::{
    Gpu, GpuOptions, GpuTensor, MatVec, Readback, UPLOAD_CHUNK, act_pack_cpu, act_quant_cpu, matvec_cpu,
    packed_input, shaders,
};
use aether_core::quant::GgmlType;
use aether_tests::gpu::{Rng, assert_nmse, test_gpu, weights};

/// Sentinel in y outside the rows a mat-vec writes.
const UNTOUCHED: f32 = 12345.0;

/// The CPU twin's `W·x`: with x as the kernel sees it (quantized for a packed-input kernel). Q4_1
/// takes the CPU's own product of the two formats (`quant::dot_quantized`): its `m·s` term reads
/// the Q8_1 block sum rounded to f16, which the quantized x in f32 does not carry.
fn want(ty: GgmlType, bytes: &[u8], x: &[f32], rows: usize) -> Vec<f32> {
    if ty == GgmlType::Q4_1 {
        let mut acts = Vec::new();
        aether_core::quant::quantize_activations(ty, x, &mut acts).expect("CPU quantizer");
        let rb = bytes.len() / rows;
        return bytes
            .chunks(rb)
            .map(|row| aether_core::quant::dot_quantized(ty, row, &acts).expect("dot"))
            .collect();
    }
    let x = if packed_input(ty) { act_quant_cpu(ty, x).expect("CPU quantizer") } else { x.to_vec() };
    let mut y = vec![0f32; rows];
    matvec_cpu(ty, bytes, &x, &mut y).expect("CPU twin");
    y
}

/// Runs `W·x` on the GPU: x at element `x_off` (packed: at word 4 · x_off), y at `y_off`;
/// returns the whole y buffer.
fn gpu_matvec(
    gpu: &Gpu,
    w: &GpuTensor,
    x: &[f32],
    x_off: usize,
    y_off: usize,
) -> aether_core::Result<(Vec<f32>, String)> {
    gpu_matvec_into(gpu, w, x, x_off, y_off, false)
}

/// [`gpu_matvec`], adding the product to y's contents (`UNTOUCHED`) when `add`.
fn gpu_matvec_into(
    gpu: &Gpu,
    w: &GpuTensor,
    x: &[f32],
    x_off: usize,
    y_off: usize,
    add: bool,
) -> aether_core::Result<(Vec<f32>, String)> {
    let dev = gpu.device();
    let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
    let make = |label, n: usize| {
        dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (n * 4) as u64,
            usage: storage,
            mapped_at_creation: false,
        })
    };
    let (words, x_off): (Vec<u32>, usize) = if packed_input(w.ty) {
        (act_pack_cpu(w.ty, x, x.len())?, 4 * x_off)
    } else {
        (x.iter().map(|v| v.to_bits()).collect(), x_off)
    };
    let xb = make("x", x_off + words.len());
    gpu.queue().write_buffer(&xb, (x_off * 4) as u64, bytemuck::cast_slice(&words));
    let y_len = y_off + w.rows as usize + 3;
    let yb = make("y", y_len);
    gpu.queue().write_buffer(&yb, 0, bytemuck::cast_slice(&vec![UNTOUCHED; y_len]));

    let mv = if add {
        MatVec::new_add(gpu, w, &xb, x_off as u64, &yb, y_off as u64)?
    } else {
        MatVec::new(gpu, w, &xb, x_off as u64, &yb, y_off as u64)?
    };
    let mut enc = dev.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        mv.encode(&mut pass);
    }
    gpu.submit(enc, "mat-vec test")?;
    let y = pollster::block_on(gpu.read_f32(&yb, 0, y_len))?;
    Ok((y, mv.key().to_string()))
}

/// (rows, cols) cases for a type with `block` elements per block.
fn sizes(ty: GgmlType) -> Vec<(usize, usize)> {
    match ty.block_size() {
        1 => vec![(1, 1), (7, 33), (33, 4096), (3, 4099), (2, 14336 + 2)],
        32 => vec![(1, 32), (7, 96), (33, 4096), (3, 4096 + 5 * 32)],
        _ => vec![(1, 256), (7, 768), (33, 4096), (3, 14336)],
    }
}

/// Worst NMSE accepted: f32 accumulation in another order than the CPU's. The worst measured over
/// all cases is ~1e-12 (bf16 on lavapipe); a wrong sign or scale anywhere gives 1e-3 and up.
const MAX_NMSE: f64 = 1e-10;

/// Checks every type and size on `gpu`; returns the kernels run. Collects every failure before
/// panicking, so one broken type does not hide another.
fn check_all_types(gpu: &Gpu, label: &str) -> Vec<String> {
    let mut failures = Vec::new();
    let mut keys = Vec::new();
    let mut rng = Rng::new(0x5eed);
    for ty in shaders::MATVEC_TYPES {
        let mut worst = 0f64;
        for (case, (rows, cols)) in sizes(ty).into_iter().enumerate() {
            for raw in [false, true] {
                let what = format!("{label} {ty} rows={rows} cols={cols} raw={raw}");
                let bytes = weights(ty, rows, cols, raw, &mut rng);
                let x = rng.vec(cols);
                let (x_off, y_off) = (case % 4, 5);
                let want = want(ty, &bytes, &x, rows);
                let run = GpuTensor::upload(gpu, "w", ty, cols as u64, rows as u64, &bytes, &mut |_, _| {})
                    .and_then(|w| gpu_matvec(gpu, &w, &x, x_off, y_off));
                let (y, key) = match run {
                    Ok(r) => r,
                    Err(e) => {
                        failures.push(format!("{what}: {e}"));
                        continue;
                    }
                };
                if !keys.contains(&key) {
                    keys.push(key);
                }
                let outside = y[..y_off].iter().chain(&y[y_off + rows..]).any(|&v| v != UNTOUCHED);
                if outside {
                    failures.push(format!("{what}: wrote outside y[{y_off}..{}]", y_off + rows));
                }
                let got = &y[y_off..y_off + rows];
                match std::panic::catch_unwind(|| assert_nmse(got, &want, MAX_NMSE, &what)) {
                    Ok(nmse) => worst = worst.max(nmse),
                    Err(e) => failures.push(e.downcast_ref::<String>().cloned().unwrap_or_default()),
                }
            }
        }
        eprintln!("{label} {ty}: worst NMSE {worst:.2e}");
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    keys
}

#[test]
fn matvec_matches_cpu_with_the_best_reduction() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    eprintln!("adapter: {}", gpu.describe());
    let keys = check_all_types(&gpu, "default");
    let suffix = suffix(gpu.caps().subgroups, gpu.caps().software);
    assert!(keys.iter().all(|k| k.ends_with(&suffix)), "kernels run: {keys:?}, expected all *{suffix}");
    assert_eq!(keys.len(), shaders::MATVEC_TYPES.len(), "{keys:?}");
}

/// The pipeline key suffix of a reduction and workgroup geometry.
fn suffix(subgroups: bool, software: bool) -> String {
    format!("{}{}", if subgroups { "_sg" } else { "_wg" }, if software { "_sw" } else { "" })
}

/// The geometry this adapter does not take by default: on lavapipe (a software adapter) the
/// 256-invocation workgroups of real GPUs, on a GPU the 16-invocation ones of software adapters.
#[test]
fn matvec_matches_cpu_in_the_other_workgroup_geometry() {
    let Some(probe) = test_gpu(GpuOptions::default()) else { return };
    let software = !probe.caps().software;
    drop(probe);
    let Some(gpu) = test_gpu(GpuOptions { software: Some(software), ..Default::default() }) else { return };
    assert_eq!(gpu.caps().software, software);
    let keys = check_all_types(&gpu, if software { "software" } else { "hardware" });
    let suffix = suffix(gpu.caps().subgroups, software);
    assert!(keys.iter().all(|k| k.ends_with(&suffix)), "kernels run: {keys:?}, expected all *{suffix}");
}

/// `y += W·x` (the residual add a projection does itself): the packed-input kernels and an f32
/// one.
#[test]
fn matvec_adds_into_y() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let mut rng = Rng::new(11);
    for (ty, rows, cols) in
        [(GgmlType::Q4K, 9, 512), (GgmlType::Q6K, 5, 256), (GgmlType::Q8_0, 7, 96), (GgmlType::F16, 3, 40)]
    {
        let what = format!("{ty} {rows}x{cols} added to y");
        let bytes = weights(ty, rows, cols, false, &mut rng);
        let x = rng.vec(cols);
        let w = GpuTensor::upload(&gpu, "w", ty, cols as u64, rows as u64, &bytes, &mut |_, _| {})
            .expect("upload");
        let want: Vec<f32> = want(ty, &bytes, &x, rows).iter().map(|v| v + UNTOUCHED).collect();
        let (y, _) = gpu_matvec_into(&gpu, &w, &x, 0, 1, true).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_nmse(&y[1..1 + rows], &want, MAX_NMSE, &what);
        assert!(y[0] == UNTOUCHED && y[1 + rows..].iter().all(|&v| v == UNTOUCHED), "{what}: wrote outside");
    }
}

#[test]
fn matvec_matches_cpu_with_subgroups_forced_off() {
    let Some(gpu) = test_gpu(GpuOptions { no_subgroups: true, ..Default::default() }) else { return };
    assert!(!gpu.caps().subgroups);
    let keys = check_all_types(&gpu, "no-subgroups");
    let suffix = suffix(false, gpu.caps().software);
    assert!(keys.iter().all(|k| k.ends_with(&suffix)), "kernels run: {keys:?}");
}

#[test]
fn tensors_over_the_binding_limit_split_by_rows() {
    const LIMIT: u64 = 2048;
    let Some(gpu) = test_gpu(GpuOptions { max_storage_binding: Some(LIMIT), ..Default::default() }) else {
        return;
    };
    assert_eq!(gpu.caps().max_storage_binding, LIMIT);
    let mut rng = Rng::new(7);
    // Q4_K: 432-byte rows, 4 per piece. Q6_K: 420-byte rows (blocks off word boundaries).
    // Q8_0: 102-byte rows, 20 per 2040-byte piece, last piece padded. F16: 66-byte rows.
    for (ty, rows, cols) in [
        (GgmlType::Q4K, 33, 768),
        (GgmlType::Q6K, 17, 512),
        (GgmlType::Q8_0, 45, 96),
        (GgmlType::F16, 70, 33),
    ] {
        let what = format!("{ty} {rows}x{cols} under a {LIMIT}-byte binding limit");
        let bytes = weights(ty, rows, cols, true, &mut rng);
        let x = rng.vec(cols);
        let mut calls = Vec::new();
        let w = GpuTensor::upload(&gpu, "split", ty, cols as u64, rows as u64, &bytes, &mut |d, t| {
            calls.push((d, t))
        })
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        let row_bytes = w.row_bytes;
        assert!(w.pieces.len() > 1, "{what}: {} piece(s)", w.pieces.len());
        let mut next = 0;
        for p in &w.pieces {
            assert_eq!(p.first_row, next, "{what}: pieces must tile the rows in order");
            assert!(p.buffer.size() <= LIMIT, "{what}: piece of {} bytes", p.buffer.size());
            assert_eq!(p.buffer.size(), (p.rows * row_bytes).next_multiple_of(4), "{what}: piece padding");
            next += p.rows;
        }
        assert_eq!(next, rows as u64, "{what}: rows covered");
        let total = bytes.len() as u64;
        assert_eq!(calls.last(), Some(&(total, total)), "{what}: progress must end at the total: {calls:?}");
        assert!(calls.windows(2).all(|c| c[0].0 < c[1].0), "{what}: progress must grow: {calls:?}");

        let want = want(ty, &bytes, &x, rows);
        let (y, _) = gpu_matvec(&gpu, &w, &x, 1, 2).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_nmse(&y[2..2 + rows], &want, MAX_NMSE, &what);
    }
    // A row over the limit cannot be split.
    let bytes = weights(GgmlType::Q4K, 2, 4096, true, &mut rng);
    match GpuTensor::upload(&gpu, "wide", GgmlType::Q4K, 4096, 2, &bytes, &mut |_, _| {}) {
        Err(Error::GpuRowTooLarge { name, row_bytes: 2304, max_binding: LIMIT }) => assert_eq!(name, "wide"),
        Err(e) => panic!("expected GpuRowTooLarge, got {e}"),
        Ok(_) => panic!("expected GpuRowTooLarge, got a tensor"),
    }
}

/// A tensor over one upload chunk (32 MiB) whose byte length is not a multiple of 4: chunks land
/// at the right offsets, the 2-byte tail is padded, and progress is reported per chunk.
#[test]
fn uploads_go_in_chunks_with_progress() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let (rows, cols) = (5, 3_400_001); // F16: 34,000,010 bytes
    let mut rng = Rng::new(13);
    let bytes = weights(GgmlType::F16, rows, cols, false, &mut rng);
    assert!(bytes.len() as u64 > UPLOAD_CHUNK && bytes.len() % 4 == 2);
    let x = rng.vec(cols);
    let mut calls = Vec::new();
    let w = GpuTensor::upload(&gpu, "long", GgmlType::F16, cols as u64, rows as u64, &bytes, &mut |d, t| {
        calls.push((d, t))
    })
    .expect("upload");
    let total = bytes.len() as u64;
    assert_eq!(calls, vec![(UPLOAD_CHUNK, total), (total, total)], "progress per chunk");
    assert_eq!(w.gpu_bytes(), total.next_multiple_of(4));
    let mut want = vec![0f32; rows];
    matvec_cpu(GgmlType::F16, &bytes, &x, &mut want).expect("CPU twin");
    let (y, _) = gpu_matvec(&gpu, &w, &x, 0, 0).expect("matvec");
    assert_nmse(&y[..rows], &want, MAX_NMSE, "F16 5x3400001 uploaded in two chunks");
}

/// More rows than one grid dimension holds workgroups (65,535 × 4 rows, e.g. Gemma's 262,144-token
/// vocabulary): the launcher lays the grid over x and y.
#[test]
fn matvec_grid_spills_into_y() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let max_rows = gpu.caps().max_workgroups_per_dim as usize * 4;
    let (rows, cols) = (max_rows + 9, 4);
    let mut rng = Rng::new(5);
    let bytes = weights(GgmlType::F32, rows, cols, false, &mut rng);
    let x = rng.vec(cols);
    let w = GpuTensor::upload(&gpu, "tall", GgmlType::F32, cols as u64, rows as u64, &bytes, &mut |_, _| {})
        .expect("upload");
    let mut want = vec![0f32; rows];
    matvec_cpu(GgmlType::F32, &bytes, &x, &mut want).expect("CPU twin");
    let (y, _) = gpu_matvec(&gpu, &w, &x, 0, 0).expect("matvec");
    assert_nmse(&y[..rows], &want, MAX_NMSE, &format!("F32 {rows}x{cols} over a 2-D grid"));
    assert!(y[rows..].iter().all(|&v| v == UNTOUCHED), "wrote past the last row");
}

#[test]
fn wgpu_errors_come_back_as_errors_not_panics() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    gpu.check("a fresh device").expect("no error yet");
    // MAP_READ may only pair with COPY_DST: a validation error, which wgpu's default handler
    // would turn into a panic.
    let _bad = gpu.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("bad"),
        size: 64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    match gpu.check("making a bad buffer") {
        Err(Error::GpuValidation { context, message }) => {
            assert_eq!(context, "making a bad buffer");
            assert!(!message.is_empty());
        }
        other => panic!("expected GpuValidation, got {other:?}"),
    }
    gpu.check("after the error was taken").expect("errors are reported once");

    // Our own checks: a y buffer too short, a weight type without a kernel, bad read ranges.
    let mut rng = Rng::new(3);
    let bytes = weights(GgmlType::Q4_0, 8, 64, false, &mut rng);
    let w = GpuTensor::upload(&gpu, "w", GgmlType::Q4_0, 64, 8, &bytes, &mut |_, _| {}).expect("upload");
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let buf = |size| {
        gpu.device().create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage,
            mapped_at_creation: false,
        })
    };
    let (x, short_y) = (buf(256), buf(28));
    assert!(matches!(MatVec::new(&gpu, &w, &x, 0, &short_y, 0), Err(Error::LengthMismatch { .. })));
    let bad =
        GpuTensor::upload(&gpu, "bad", GgmlType::Q8K, 256, 1, &[0; 292], &mut |_, _| {}).expect("upload");
    assert!(matches!(MatVec::new(&gpu, &bad, &x, 0, &buf(64), 0), Err(Error::UnsupportedType { .. })));
    assert!(matches!(
        GpuTensor::upload(&gpu, "short", GgmlType::Q4_0, 64, 8, &bytes[1..], &mut |_, _| {}),
        Err(Error::LengthMismatch { .. })
    ));
    let mut rb = Readback::new(&gpu, 64).expect("readback");
    let mut out = [0u8; 8];
    assert!(matches!(pollster::block_on(rb.read(&gpu, &x, 2, &mut out)), Err(Error::GpuReadback { .. })));
    let mut big = [0u8; 128];
    assert!(matches!(pollster::block_on(rb.read(&gpu, &x, 0, &mut big)), Err(Error::GpuReadback { .. })));
    let mut past = [0u8; 64];
    assert!(matches!(pollster::block_on(rb.read(&gpu, &x, 224, &mut past)), Err(Error::GpuReadback { .. })));
    gpu.check("after our own checks").expect("none of them reached wgpu");

    // An error scope catches what happens inside it (the browser's way to await a load's
    // verdict) and hands it back with its context; a clean scope is Ok; the device is not lost.
    let scope = gpu.error_scope();
    let _bad = gpu.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("bad in a scope"),
        size: 64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    match pollster::block_on(scope.finish(&gpu, "a scoped span")) {
        Err(Error::GpuValidation { context, .. }) => assert_eq!(context, "a scoped span"),
        other => panic!("expected GpuValidation from the scope, got {other:?}"),
    }
    gpu.check("after the scope").expect("the scope took its error; none reached the handler");
    pollster::block_on(gpu.error_scope().finish(&gpu, "an empty span")).expect("an empty scope");
    assert!(gpu.lost().is_none());
}

#[test]
fn pipelines_are_built_once_per_key() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let mut rng = Rng::new(11);
    let x = rng.vec(256);
    for _ in 0..3 {
        let bytes = weights(GgmlType::Q4K, 5, 256, false, &mut rng);
        let w = GpuTensor::upload(&gpu, "w", GgmlType::Q4K, 256, 5, &bytes, &mut |_, _| {}).expect("upload");
        gpu_matvec(&gpu, &w, &x, 0, 0).expect("matvec");
    }
    let want = format!("matvec_q4_k{}", suffix(gpu.caps().subgroups, gpu.caps().software));
    assert_eq!(gpu.pipeline_keys(), vec![want]);
}

/// A fused tensor (parts' rows end to end, as the loader uploads a layer's q, k and v) whose
/// mat-vec writes each part to its own region of y (`MatVec::new_parts`): with one buffer, and
/// split under a small binding limit so that a piece starts inside a part and another holds a part
/// boundary; both reductions. Rows between the regions stay untouched.
#[test]
fn fused_parts_land_in_their_regions() {
    const LIMIT: u64 = 576;
    let mut rng = Rng::new(11);
    for opts in [
        GpuOptions::default(),
        GpuOptions { no_subgroups: true, ..Default::default() },
        GpuOptions { max_storage_binding: Some(LIMIT), ..Default::default() },
    ] {
        let Some(gpu) = test_gpu(opts.clone()) else { return };
        for (ty, cols) in [(GgmlType::Q4K, 256), (GgmlType::Q8_0, 64), (GgmlType::F16, 34)] {
            let parts = [(7usize, 3usize), (5, 14), (6, 29)];
            let rows: usize = parts.iter().map(|p| p.0).sum();
            let what = format!("{ty} parts {parts:?} x{cols}, {opts:?}");
            let bytes = weights(ty, rows, cols, false, &mut rng);
            let x = rng.vec(cols);
            let want = want(ty, &bytes, &x, rows);
            let w = GpuTensor::upload(&gpu, "qkv", ty, cols as u64, rows as u64, &bytes, &mut |_, _| {})
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let words: Vec<u32> = if packed_input(ty) {
                act_pack_cpu(ty, &x, x.len()).expect("pack")
            } else {
                x.iter().map(|v| v.to_bits()).collect()
            };
            let xb = gpu.storage("x", words.len() as u64 * 4).expect("x");
            gpu.queue().write_buffer(&xb, 0, bytemuck::cast_slice(&words));
            let y_len = 29 + 6 + 3;
            let yb = gpu.storage("y", y_len as u64 * 4).expect("y");
            gpu.queue().write_buffer(&yb, 0, bytemuck::cast_slice(&vec![UNTOUCHED; y_len]));
            let at: Vec<(u64, u64)> = parts.iter().map(|&(r, o)| (r as u64, o as u64)).collect();
            let mv = MatVec::new_parts(&gpu, &w, &xb, 0, &yb, &at).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(mv.dispatches(), w.pieces.len(), "{what}: one dispatch per piece");
            let mut enc = gpu.device().create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                mv.encode(&mut pass);
            }
            gpu.submit(enc, "fused mat-vec test").expect("submit");
            let y = pollster::block_on(gpu.read_f32(&yb, 0, y_len)).expect("read");
            let mut expect = vec![UNTOUCHED; y_len];
            let mut row = 0;
            for &(r, o) in &parts {
                expect[o..o + r].copy_from_slice(&want[row..row + r]);
                row += r;
            }
            let untouched = |i: usize| !parts.iter().any(|&(r, o)| (o..o + r).contains(&i));
            for i in (0..y_len).filter(|&i| untouched(i)) {
                assert_eq!(y[i], UNTOUCHED, "{what}: y[{i}] outside the regions was written");
            }
            assert_nmse(&y, &expect, MAX_NMSE, &what);
        }
    }
}
