// rmsnorm_inplace.wgsl — the `io` section of rmsnorm.wgsl for y = x (the per-head q/k norms): one
// read_write binding, since wgpu refuses a buffer bound both read-only and writable in one
// dispatch. The launcher splices it over rmsnorm.wgsl's section (gpu::shaders::swap_section); the
// y offset is then the x offset. Valid WGSL alone so that naga can check it.

// ---- io (in place): x is read and written.
@group(0) @binding(3) var<storage, read_write> x: array<f32>;  // [x_off + rows · groups · width]

fn load_x(i: u32) -> f32 {
    return x[i];
}

fn store_y(i: u32, v: f32) {
    x[i] = v;
}
