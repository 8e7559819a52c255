//! The distillation loss: `α·CE(gold) + (1−α)·T²·KL(p_teacher^T ‖ p_student^T)`, per row, with
//! rows that lack a gold label using only the KL term and rows without teacher logits only CE.

use candle_core::{DType, Tensor, D};
use candle_nn::ops::{log_softmax, softmax_last_dim};

use crate::error::Result;

/// The targets of a batch.
pub struct Targets<'a> {
    /// Gold class per row, `[B]` u32 (any value where `gold_mask` is 0).
    pub gold: &'a Tensor,
    /// 1.0 where the row has a gold label, `[B]` f32.
    pub gold_mask: &'a Tensor,
    /// Teacher logits at temperature 1, `[B, C]` f32 (any value where `teacher_mask` is 0).
    pub teacher: &'a Tensor,
    /// 1.0 where the row has teacher logits, `[B]` f32.
    pub teacher_mask: &'a Tensor,
    /// Weight of each row's gold cross-entropy (its class weight, see
    /// [`crate::distill::train_config::ClassWeights`]), `[B]` f32; `None`: 1 for every row.
    pub gold_weight: Option<&'a Tensor>,
}

/// Loss settings.
#[derive(Debug, Clone, Copy)]
pub struct LossWeights {
    /// Weight of the gold cross-entropy where both targets exist.
    pub alpha: f64,
    /// Softmax temperature applied to teacher and student in the KL term.
    pub temperature: f64,
}

/// Per-row loss `[B]`: see the module docs. Rows with neither target contribute 0.
pub fn rows(student: &Tensor, t: &Targets<'_>, w: LossWeights) -> Result<Tensor> {
    let temp = w.temperature;
    // Cross-entropy against the gold label.
    let logp = log_softmax(student, D::Minus1)?;
    let mut ce = logp.gather(&t.gold.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?;
    if let Some(w) = t.gold_weight {
        ce = (ce * w)?;
    }
    // KL(p_t^T || p_s^T) = Σ p_t (log p_t − log p_s).
    let pt = softmax_last_dim(&(t.teacher / temp)?)?;
    let log_pt = log_softmax(&(t.teacher / temp)?, D::Minus1)?;
    let log_ps = log_softmax(&(student / temp)?, D::Minus1)?;
    let kl = (pt * (log_pt - log_ps)?)?.sum(D::Minus1)?;
    // Weights: both targets -> α / (1−α)·T²; gold only -> CE; teacher only -> T²·KL.
    let g = t.gold_mask;
    let k = t.teacher_mask;
    let w_ce = (g * ((k * w.alpha)? + (1.0 - k)?)?)?;
    let w_kl = ((k * ((g * (1.0 - w.alpha))? + (1.0 - g)?)?)? * (temp * temp))?;
    Ok(((w_ce * ce)? + (w_kl * kl)?)?)
}

/// Mean loss over rows that have at least one target.
pub fn mean(rows: &Tensor, t: &Targets<'_>) -> Result<Tensor> {
    let any = (t.gold_mask + t.teacher_mask)?.clamp(0.0, 1.0)?;
    let n = any
        .sum_all()?
        .to_dtype(DType::F32)?
        .to_scalar::<f32>()?
        .max(1.0);
    Ok((rows.sum_all()? / n as f64)?)
}

/// KL of the student on augmented rows to its (fixed) prediction on their parents:
/// `KL(stop_grad(p_s(parent)) ‖ p_s(aug))`, averaged over the pairs, at temperature 1.
pub fn consistency(aug_logits: &Tensor, parent_logits: &Tensor) -> Result<Tensor> {
    let target = parent_logits.detach();
    let p = softmax_last_dim(&target)?;
    let log_p = log_softmax(&target, D::Minus1)?;
    let log_q = log_softmax(aug_logits, D::Minus1)?;
    Ok((p * (log_p - log_q)?)?.sum(D::Minus1)?.mean_all()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
    }

    fn log_softmax_vec(x: &[f64]) -> Vec<f64> {
        let m = x.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = x.iter().map(|v| (v - m).exp()).sum::<f64>().ln() + m;
        x.iter().map(|v| v - z).collect()
    }

    /// The loss by hand, in f64, for one row.
    fn by_hand(
        s: &[f64],
        teacher: Option<&[f64]>,
        gold: Option<usize>,
        alpha: f64,
        temp: f64,
    ) -> f64 {
        let ce = gold.map(|g| -log_softmax_vec(s)[g]);
        let kl = teacher.map(|tl| {
            let lt = log_softmax_vec(&tl.iter().map(|v| v / temp).collect::<Vec<_>>());
            let ls = log_softmax_vec(&s.iter().map(|v| v / temp).collect::<Vec<_>>());
            lt.iter()
                .zip(&ls)
                .map(|(a, b)| a.exp() * (a - b))
                .sum::<f64>()
        });
        match (ce, kl) {
            (Some(c), Some(k)) => alpha * c + (1.0 - alpha) * temp * temp * k,
            (Some(c), None) => c,
            (None, Some(k)) => temp * temp * k,
            (None, None) => 0.0,
        }
    }

    #[test]
    fn matches_hand_computed_values_with_t_squared_scaling() {
        let s = [
            [1.0, -0.5, 2.0],
            [0.3, 0.1, -1.2],
            [2.5, 0.0, 0.5],
            [0.0, 0.0, 0.0],
        ];
        let te = [
            [0.5, 1.5, -1.0],
            [2.0, -1.0, 0.0],
            [0.0, 0.0, 0.0],
            [1.0, 2.0, 3.0],
        ];
        let gold = [2u32, 0, 1, 0];
        let gm = [1.0f32, 0.0, 1.0, 0.0];
        let tm = [1.0f32, 1.0, 0.0, 0.0];
        let flat = |x: &[[f64; 3]; 4]| x.iter().flatten().map(|v| *v as f32).collect::<Vec<_>>();
        let st = t(&flat(&s), &[4, 3]);
        let tt = t(&flat(&te), &[4, 3]);
        let g = Tensor::from_vec(gold.to_vec(), 4, &Device::Cpu).unwrap();
        let gmt = t(&gm, &[4]);
        let tmt = t(&tm, &[4]);
        let targets = Targets {
            gold: &g,
            gold_mask: &gmt,
            teacher: &tt,
            teacher_mask: &tmt,
            gold_weight: None,
        };
        for (alpha, temp) in [(0.5, 1.0), (0.3, 2.0), (0.9, 4.0)] {
            let r: Vec<f32> = rows(
                &st,
                &targets,
                LossWeights {
                    alpha,
                    temperature: temp,
                },
            )
            .unwrap()
            .to_vec1()
            .unwrap();
            for i in 0..4 {
                let want = by_hand(
                    &s[i],
                    (tm[i] > 0.0).then_some(&te[i][..]),
                    (gm[i] > 0.0).then_some(gold[i] as usize),
                    alpha,
                    temp,
                );
                assert!(
                    (r[i] as f64 - want).abs() < 1e-4,
                    "row {i} α={alpha} T={temp}: {} vs {want}",
                    r[i]
                );
            }
            let m = mean(
                &rows(
                    &st,
                    &targets,
                    LossWeights {
                        alpha,
                        temperature: temp,
                    },
                )
                .unwrap(),
                &targets,
            )
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
            assert!((m as f64 - r.iter().map(|v| *v as f64).sum::<f64>() / 3.0).abs() < 1e-4);
        }
    }

    #[test]
    fn class_weights_scale_only_the_gold_term() {
        let s = t(&[1.0, -0.5, 0.3, 0.2], &[2, 2]);
        let te = t(&[0.5, 1.5, 2.0, -1.0], &[2, 2]);
        let g = Tensor::from_vec(vec![0u32, 1], 2, &Device::Cpu).unwrap();
        let (gm, tm) = (t(&[1.0, 1.0], &[2]), t(&[1.0, 0.0], &[2]));
        let w = t(&[2.0, 0.5], &[2]);
        let lw = LossWeights {
            alpha: 0.3,
            temperature: 2.0,
        };
        let of = |gold_weight| -> Vec<f32> {
            let targets = Targets {
                gold: &g,
                gold_mask: &gm,
                teacher: &te,
                teacher_mask: &tm,
                gold_weight,
            };
            rows(&s, &targets, lw).unwrap().to_vec1().unwrap()
        };
        let (plain, weighted) = (of(None), of(Some(&w)));
        let ce0 = -log_softmax_vec(&[1.0, -0.5])[0];
        let ce1 = -log_softmax_vec(&[0.3, 0.2])[1];
        // Row 0: α·2·CE + (1−α)·T²·KL; row 1 (gold only): 0.5·CE.
        assert!(((weighted[0] - plain[0]) as f64 - 0.3 * ce0).abs() < 1e-5);
        assert!((weighted[1] as f64 - 0.5 * ce1).abs() < 1e-5);
    }

    #[test]
    fn t_squared_keeps_gradient_scale() {
        // The KL gradient w.r.t. student logits scales as 1/T; T² scaling makes the loss's
        // gradient scale as T, so soft targets keep their weight as T grows (Hinton et al.).
        let te = t(&[3.0, 0.0, -3.0], &[1, 3]);
        let g = Tensor::from_vec(vec![0u32], 1, &Device::Cpu).unwrap();
        let zero = t(&[0.0], &[1]);
        let one = t(&[1.0], &[1]);
        let targets = Targets {
            gold: &g,
            gold_mask: &zero,
            teacher: &te,
            teacher_mask: &one,
            gold_weight: None,
        };
        let mut norms = vec![];
        for temp in [1.0, 4.0] {
            let v = candle_core::Var::from_tensor(&t(&[0.0, 0.0, 0.0], &[1, 3])).unwrap();
            let l = rows(
                v.as_tensor(),
                &targets,
                LossWeights {
                    alpha: 0.0,
                    temperature: temp,
                },
            )
            .unwrap()
            .sum_all()
            .unwrap();
            let grad = l.backward().unwrap().get(v.as_tensor()).unwrap().clone();
            norms.push(
                grad.sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .sqrt()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap(),
            );
        }
        assert!(norms[0] > 0.0 && norms[1] > 0.0);
        // Near T ≥ the logit scale, grad ≈ (p_s − p_t)·T ≈ (z_s − z_t)/T: both stay O(1).
        assert!(
            norms[1] / norms[0] > 0.5 && norms[1] / norms[0] < 2.0,
            "{norms:?}"
        );
    }

    #[test]
    fn consistency_is_zero_for_equal_predictions_and_positive_otherwise() {
        let a = t(&[1.0, 2.0, 0.5, 0.0, 0.0, 1.0], &[2, 3]);
        let z = consistency(&a, &a).unwrap().to_scalar::<f32>().unwrap();
        assert!(z.abs() < 1e-6);
        let b = t(&[2.0, 0.0, 0.5, 1.0, 0.0, 0.0], &[2, 3]);
        assert!(consistency(&a, &b).unwrap().to_scalar::<f32>().unwrap() > 0.01);
    }
}
