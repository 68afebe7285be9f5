// rope_angles.wgsl — the rotation angles of rope.wgsl, rope_kv.wgsl and the fused q|k|v
// mat-vec's rope store (put_rope.wgsl): θ_i at a position as ggml's running product, then
// (cos φ_i, sin φ_i) · attn_factor of φ_i = freq_scale · θ_i (/ factor_i), φ reduced by 2π
// first. All three take the same bits from the same functions. The includer declares `factors`
// ([n_rot/2] f32; one unused value without factors).

// 2π = C1 + C2 + C3 + C4: C1..C3 have 8 significant bits, so k · Ci is exact for k < 2^16
// (|φ| < 4·10⁵); C4 is the rest rounded to f32 (the sum is 2π within 2·10⁻¹⁶). WGSL's sin and cos
// are only specified on [-π, π], while positions reach 10⁵ radians.
const C1: f32 = 6.28125;
const C2: f32 = 0.00193023681640625;
const C3: f32 = 5.066394805908203e-06;
const C4: f32 = 3.968374517882012e-09;
const INV_2PI: f32 = 0.15915494;

fn reduce_angle(phi: f32) -> f32 {
    let k = round(phi * INV_2PI);
    return (((phi - k * C1) - k * C2) - k * C3) - k * C4;
}

// θ_i at position `pos` for the scale base^(-2/n_rot): the running product. The scale is an
// argument (read once): a uniform read in each step of the loop made the product rope_kv's
// longest part.
fn theta(i: u32, pos: u32, s: f32) -> f32 {
    var t = f32(pos);
    var j = 0u;
    for (; j + 4u <= i; j += 4u) {
        t *= s;
        t *= s;
        t *= s;
        t *= s;
    }
    for (; j < i; j++) {
        t *= s;
    }
    return t;
}

// What turns θ into an angle: the model's frequency scale and attention factor, and whether
// `factors` divides θ_i.
struct Angles {
    freq_scale: f32,
    attn_factor: f32,
    has_factors: u32,
}

// (cos φ_i, sin φ_i) · attn_factor for pair i turned by θ_i = `th`.
fn turn(i: u32, th: f32, a: Angles) -> vec2<f32> {
    var t = th;
    if a.has_factors == 1u {
        t = t / factors[i];
    }
    let phi = reduce_angle(a.freq_scale * t);
    return vec2<f32>(cos(phi) * a.attn_factor, sin(phi) * a.attn_factor);
}
