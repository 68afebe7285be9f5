//! Comparing next-token logits with llama.cpp's goldens: argmax as llama.cpp's greedy picks it,
//! the top-1 margin, and KL(llama.cpp ‖ aether) over llama.cpp's top tokens plus one bucket for
//! the rest of the vocabulary (the goldens store only the top of each row and its tail mass).

/// One position of llama.cpp's logits, as a golden stores it.
#[derive(Clone, Debug)]
pub struct TopRow {
    /// log Σ exp over the full row.
    pub lse: f64,
    /// Probability mass outside `top`.
    pub tail: f64,
    /// The top tokens, highest logit first.
    pub top: Vec<(u32, f32)>,
}

/// Index of the largest logit, the lowest on ties (as numpy's argmax and llama.cpp's greedy).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// The gap between the two largest logits.
pub fn margin(v: &[f32]) -> f32 {
    let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &x in v {
        if x > a {
            (a, b) = (x, a);
        } else if x > b {
            b = x;
        }
    }
    a - b
}

/// log Σ exp(v), in f64.
pub fn log_sum_exp(v: &[f32]) -> f64 {
    let m = v.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    m + v.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln()
}

/// KL(P ‖ Q) over the row's top tokens plus one bucket holding the rest of the vocabulary, P from
/// the golden row, Q from our logits. Grouping the tail can only lower a KL.
pub fn bucketed_kl(row: &TopRow, ours: &[f32]) -> f64 {
    let lse_q = log_sum_exp(ours);
    let (mut kl, mut head_q) = (0f64, 0f64);
    for &(id, logit) in &row.top {
        let lp = logit as f64 - row.lse;
        let lq = ours[id as usize] as f64 - lse_q;
        kl += lp.exp() * (lp - lq);
        head_q += lq.exp();
    }
    let tail_q = (1.0 - head_q).max(f64::MIN_POSITIVE);
    if row.tail > 0.0 {
        kl += row.tail * (row.tail.ln() - tail_q.ln());
    }
    kl
}

/// Parses `id:logit id:logit …`.
pub fn parse_top(s: &str) -> Vec<(u32, f32)> {
    s.split(' ')
        .map(|p| {
            let (id, logit) = p.split_once(':').expect("id:logit");
            (id.parse().expect("id"), logit.parse().expect("logit"))
        })
        .collect()
}
