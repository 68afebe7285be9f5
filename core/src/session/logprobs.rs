//! Log-probabilities of a sampled token and of the most likely alternatives, for OpenAI's
//! `logprobs`/`top_logprobs`. They are the log-softmax of the model's raw logits at that step —
//! the distribution before logit bias, penalties, temperature and truncation, as OpenAI reports
//! them — so they do not depend on the sampling settings.

/// The sampled token's log-probability and the `k` most likely tokens' (best first, lowest id on
/// ties).
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprobs {
    pub token: u32,
    pub logprob: f32,
    pub top: Vec<(u32, f32)>,
}

/// Log-softmax of `logits` at `token` and at the `k` largest logits. NaN logits count as −∞.
pub fn token_logprobs(logits: &[f32], token: u32, k: usize) -> TokenLogprobs {
    let finite = |l: f32| if l.is_nan() { f32::NEG_INFINITY } else { l };
    let max = logits.iter().copied().map(finite).fold(f32::NEG_INFINITY, f32::max);
    // log Σ exp(l − max), accumulated in f64: 49k+ terms lose digits in f32.
    let sum: f64 = logits.iter().map(|&l| f64::from(finite(l) - max).exp()).sum();
    let log_z = max + sum.ln() as f32;
    let lp = |t: u32| logits.get(t as usize).map_or(f32::NEG_INFINITY, |&l| finite(l) - log_z);

    // The k best in one pass: a small sorted list, enough for OpenAI's k ≤ 20.
    let mut top: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    if k > 0 {
        for (t, &l) in logits.iter().enumerate() {
            let l = finite(l);
            if top.len() == k && l <= top[k - 1].1 {
                continue;
            }
            let at = top.partition_point(|&(_, b)| b >= l);
            top.insert(at, (t as u32, l));
            top.truncate(k);
        }
    }
    for e in &mut top {
        e.1 -= log_z;
    }
    TokenLogprobs { token, logprob: lp(token), top }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_direct_log_softmax() {
        let logits = [1.0f32, 3.0, -2.0, 3.0, 0.5];
        let z: f32 = logits.iter().map(|l| l.exp()).sum::<f32>().ln();
        let got = token_logprobs(&logits, 4, 3);
        assert!((got.logprob - (0.5 - z)).abs() < 1e-6, "{got:?}");
        let ids: Vec<u32> = got.top.iter().map(|e| e.0).collect();
        assert_eq!(ids, [1, 3, 0], "best first, lowest id on ties");
        for (t, l) in &got.top {
            assert!((l - (logits[*t as usize] - z)).abs() < 1e-6, "token {t}: {l}");
        }
        assert!(token_logprobs(&logits, 0, 0).top.is_empty());
        assert_eq!(token_logprobs(&logits, 9, 9).top.len(), 5);
        assert_eq!(token_logprobs(&logits, 9, 0).logprob, f32::NEG_INFINITY);
    }
}
