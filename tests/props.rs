//! L0: ring laws, fixed-point bounds, sharing and truncation as property tests.

use proptest::prelude::*;

use prifft::mpc::{PartyId, sharing, trunc};
use prifft::prg::insecure_seeded_rng;
use prifft::ring::{FixedPoint, RingTensor, arith_shift};

fn tensor(shape: [usize; 2]) -> impl Strategy<Value = RingTensor> {
    prop::collection::vec(any::<u64>(), shape[0] * shape[1])
        .prop_map(move |v| RingTensor::from_vec(&shape, v).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn ring_is_a_commutative_ring(a in tensor([3, 4]), b in tensor([3, 4]), c in tensor([3, 4])) {
        prop_assert_eq!(a.add(&b)?, b.add(&a)?);
        prop_assert_eq!(a.add(&b)?.add(&c)?, a.add(&b.add(&c)?)?);
        prop_assert_eq!(a.mul_elem(&b)?, b.mul_elem(&a)?);
        prop_assert_eq!(a.mul_elem(&b)?.mul_elem(&c)?, a.mul_elem(&b.mul_elem(&c)?)?);
        prop_assert_eq!(a.mul_elem(&b.add(&c)?)?, a.mul_elem(&b)?.add(&a.mul_elem(&c)?)?);
        prop_assert_eq!(a.sub(&a)?, RingTensor::zeros(&[3, 4]));
        prop_assert_eq!(a.add(&a.neg())?, RingTensor::zeros(&[3, 4]));
        prop_assert_eq!(a.scale(3), a.add(&a)?.add(&a)?);
    }

    #[test]
    fn matmul_is_bilinear_and_associative(a in tensor([3, 5]), b in tensor([5, 2]), b2 in tensor([5, 2]), c in tensor([2, 4])) {
        prop_assert_eq!(a.matmul(&b.add(&b2)?)?, a.matmul(&b)?.add(&a.matmul(&b2)?)?);
        prop_assert_eq!(a.matmul(&b)?.matmul(&c)?, a.matmul(&b.matmul(&c)?)?);
        prop_assert_eq!(a.matmul(&b)?.transpose()?, b.transpose()?.matmul(&a.transpose()?)?);
    }

    #[test]
    fn shares_reconstruct_and_are_linear(a in tensor([2, 3]), b in tensor([2, 3]), seed in any::<u64>(), c in any::<u64>()) {
        let mut rng = insecure_seeded_rng(seed);
        let [a0, a1] = sharing::share_secret(&a, &mut rng);
        let [b0, b1] = sharing::share_secret(&b, &mut rng);
        prop_assert_eq!(sharing::reconstruct(&a0, &a1)?, a.clone());
        prop_assert_eq!(sharing::reconstruct(&a0.add(&b0)?, &a1.add(&b1)?)?, a.add(&b)?);
        prop_assert_eq!(sharing::reconstruct(&a0.scale(c), &a1.scale(c))?, a.scale(c));
        let p0 = a0.add_public(PartyId::P0, &b)?;
        let p1 = a1.add_public(PartyId::P1, &b)?;
        prop_assert_eq!(sharing::reconstruct(&p0, &p1)?, a.add(&b)?);
    }

    #[test]
    fn encode_decode_within_half_ulp(v in -1.0e9f64..1.0e9, f in 0u32..=24) {
        let fx = FixedPoint::new(f).unwrap();
        let back = fx.decode(fx.encode(v).unwrap());
        prop_assert!((back - v).abs() <= fx.ulp() / 2.0 + v.abs() * f64::EPSILON, "{} -> {}", v, back);
    }

    #[test]
    fn out_of_range_is_an_error(f in 0u32..=40, excess in 1.0f64..1.0e6) {
        let fx = FixedPoint::new(f).unwrap();
        let limit = (fx.max_log2() as f64).exp2();
        prop_assert!(fx.encode(limit * excess).is_err());
        prop_assert!(fx.encode(-limit * excess).is_err());
    }

    #[test]
    fn encoding_is_additive_up_to_rounding(a in -1.0e6f64..1.0e6, b in -1.0e6f64..1.0e6) {
        let fx = FixedPoint::default();
        let sum = fx.encode(a).unwrap().wrapping_add(fx.encode(b).unwrap());
        prop_assert!((fx.decode(sum) - (a + b)).abs() <= fx.ulp());
    }

    #[test]
    fn local_truncation_is_within_one_ulp(x in -(1i64 << 40)..(1i64 << 40), seed in any::<u64>(), bits in 1u32..=24) {
        // |x| < 2^40: the documented failure probability is ≤ 2^(41 − 64) = 2^−23 per case.
        let secret = RingTensor::from_vec(&[1], vec![x as u64]).unwrap();
        let [s0, s1] = sharing::share_secret(&secret, &mut insecure_seeded_rng(seed));
        let t0 = trunc::trunc_local(PartyId::P0, &s0, bits);
        let t1 = trunc::trunc_local(PartyId::P1, &s1, bits);
        let got = sharing::reconstruct(&t0, &t1)?.as_slice()[0];
        let diff = got.wrapping_sub(arith_shift(x as u64, bits)) as i64;
        prop_assert!(diff == 0 || diff == 1, "error {} ulp", diff);
    }
}
