//! Per-tenant admission: a token bucket per tenant, in bounded memory.
//!
//! Pure: time is passed in (seconds as `f64` from any monotonic origin).
//! The bucket only says whether a tenant is over its rate; the router
//! decides what that means (shed only while the tenant's worker is busy).

use std::collections::HashMap;

use tollgate_events::TenantId;

/// Token buckets for the tenants of one input.
#[derive(Debug)]
pub struct Admission {
    rate: f64,
    burst: f64,
    max_tenants: usize,
    buckets: HashMap<TenantId, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: f64,
}

impl Admission {
    /// `rate` events/s sustained, `burst` at once; `rate == 0` admits everything.
    pub fn new(rate: f64, burst: f64, max_tenants: usize) -> Self {
        Admission {
            rate,
            burst,
            max_tenants: max_tenants.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `tenant` at time `now`; `false` when the tenant
    /// is over its rate.
    pub fn take(&mut self, tenant: &TenantId, now: f64) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        if !self.buckets.contains_key(tenant) {
            if self.buckets.len() >= self.max_tenants {
                self.forget_idlest();
            }
            self.buckets.insert(
                tenant.clone(),
                Bucket {
                    tokens: self.burst,
                    last: now,
                },
            );
        }
        let b = self.buckets.get_mut(tenant).expect("inserted above");
        b.tokens = (b.tokens + (now - b.last).max(0.0) * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Tenants tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// Drops the half of the buckets seen least recently (amortised O(1)
    /// per insert; a forgotten tenant comes back with a full bucket, which
    /// errs towards admitting).
    fn forget_idlest(&mut self) {
        let mut lasts: Vec<f64> = self.buckets.values().map(|b| b.last).collect();
        let mid = lasts.len() / 2;
        lasts.select_nth_unstable_by(mid, f64::total_cmp);
        let cut = lasts[mid];
        self.buckets.retain(|_, b| b.last > cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TenantId {
        s.parse().unwrap()
    }

    #[test]
    fn a_tenant_gets_its_burst_then_its_rate() {
        let mut a = Admission::new(10.0, 5.0, 100);
        let x = t("x");
        let admitted = (0..20).filter(|_| a.take(&x, 0.0)).count();
        assert_eq!(admitted, 5);
        // One second later: ten more tokens, capped at the burst of five.
        let admitted = (0..20).filter(|_| a.take(&x, 1.0)).count();
        assert_eq!(admitted, 5);
        // 0.3 s later: three tokens.
        let admitted = (0..20).filter(|_| a.take(&x, 1.3)).count();
        assert_eq!(admitted, 3);
    }

    #[test]
    fn one_tenant_over_its_rate_leaves_others_untouched() {
        let mut a = Admission::new(1.0, 2.0, 100);
        let (x, y) = (t("x"), t("y"));
        for _ in 0..100 {
            a.take(&x, 0.0);
        }
        assert!(!a.take(&x, 0.0));
        assert!(a.take(&y, 0.0));
        assert!(a.take(&y, 0.0));
    }

    #[test]
    fn memory_stays_bounded_under_many_tenants() {
        let mut a = Admission::new(1.0, 1.0, 64);
        for i in 0..10_000 {
            a.take(&t(&format!("t{i}")), i as f64);
            assert!(a.tracked() <= 64);
        }
    }

    #[test]
    fn zero_rate_admits_everything() {
        let mut a = Admission::new(0.0, 0.0, 1);
        assert!((0..1000).all(|_| a.take(&t("x"), 0.0)));
        assert_eq!(a.tracked(), 0);
    }
}
