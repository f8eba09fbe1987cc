//! Validation: whether a found credential is still live.
//!
//! This module contacts nothing. It holds the outcome attached to a finding
//! ([`Validation`]), the [`Validator`] trait the checks are written against,
//! and [`run`], which bounds the work: each validator sees each distinct
//! credential once (however many findings hold it), and at most
//! `concurrency` checks run at a time. The checks that reach a server or a
//! provider live with the caller (the `coffer` CLI implements them), so the
//! scanner stays free of network and server code.
//!
//! A validator's [`Validator::claim`] decides, without contacting anything,
//! whether a finding is its kind and what would be checked; a decision that
//! needs no contact (an expired JWT, a host the user did not allow) is
//! returned there. [`Validator::check`] then uses the credential; it must
//! bound its own time (a per-request timeout) and never put the credential
//! in what it returns.

use crate::finding::Finding;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use zeroize::Zeroizing;

/// Whether a credential works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It was accepted (or pairs with a certificate in force).
    Live,
    /// It was refused, or it has expired.
    Revoked,
    /// It could not be judged: not checked, unreachable, not allowed.
    Unknown,
}

impl Status {
    /// `live`, `revoked` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Live => "live",
            Status::Revoked => "revoked",
            Status::Unknown => "unknown",
        }
    }
}

/// The outcome of validating one finding's credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    /// The verdict.
    pub status: Status,
    /// The validator that gave it (`coffer-token`, `postgres`, ...), or
    /// [`NO_VALIDATOR`].
    pub validator: &'static str,
    /// Why, in a few words; never holds the credential.
    pub detail: String,
}

/// [`Validation::validator`] of findings no validator claims.
pub const NO_VALIDATOR: &str = "none";

impl Validation {
    /// A `live` verdict.
    pub fn live(validator: &'static str, detail: impl Into<String>) -> Self {
        Validation {
            status: Status::Live,
            validator,
            detail: detail.into(),
        }
    }

    /// A `revoked` verdict.
    pub fn revoked(validator: &'static str, detail: impl Into<String>) -> Self {
        Validation {
            status: Status::Revoked,
            validator,
            detail: detail.into(),
        }
    }

    /// An `unknown` verdict.
    pub fn unknown(validator: &'static str, detail: impl Into<String>) -> Self {
        Validation {
            status: Status::Unknown,
            validator,
            detail: detail.into(),
        }
    }
}

/// What a validator makes of a finding it handles.
pub enum Claim {
    /// Check this credential (the secret, or what it is part of, such as a
    /// whole connection URL) with [`Validator::check`].
    Check(Zeroizing<String>),
    /// Already decided without contacting anything.
    Decided(Validation),
}

/// One kind of check.
pub trait Validator: Sync {
    /// A short stable name, reported as [`Validation::validator`].
    fn name(&self) -> &'static str;

    /// `None` when `finding` is not this validator's kind; otherwise what
    /// to check, or the verdict when none needs the credential to be used.
    /// Contacts nothing.
    fn claim(&self, finding: &Finding) -> Option<Claim>;

    /// Uses the credential and returns the verdict. Must bound its time (a
    /// per-request timeout) and never quote the credential.
    fn check(&self, credential: &str) -> Validation;
}

/// What [`run`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Distinct credentials checked (calls of [`Validator::check`]).
    pub checked: usize,
    /// Findings decided by a claim alone.
    pub decided: usize,
    /// Findings no validator claims.
    pub unclaimed: usize,
}

/// One distinct credential to check, and the findings holding it.
struct Job {
    validator: usize,
    credential: Zeroizing<String>,
    findings: Vec<usize>,
}

/// Validates every finding: the first validator claiming it decides, or
/// checks it (each distinct credential once per validator, at most
/// `concurrency` checks at a time, 0 counting as 1); findings no validator
/// claims are `unknown`. Sets [`Finding::validation`] on each.
pub fn run(findings: &mut [Finding], validators: &[&dyn Validator], concurrency: usize) -> Stats {
    let mut stats = Stats::default();
    let mut jobs: Vec<Job> = Vec::new();
    // (validator, SHA-256 of the credential) -> job: equal credentials
    // share one check without comparing secrets byte by byte.
    let mut index: HashMap<(usize, [u8; 32]), usize> = HashMap::new();
    for (i, f) in findings.iter_mut().enumerate() {
        let claimed = validators
            .iter()
            .enumerate()
            .find_map(|(v, val)| val.claim(f).map(|c| (v, c)));
        match claimed {
            None => {
                stats.unclaimed += 1;
                f.validation = Some(Validation::unknown(
                    NO_VALIDATOR,
                    "no validator for this kind of credential",
                ));
            }
            Some((_, Claim::Decided(v))) => {
                stats.decided += 1;
                f.validation = Some(v);
            }
            Some((v, Claim::Check(credential))) => {
                let digest: [u8; 32] = Sha256::digest(credential.as_bytes()).into();
                match index.get(&(v, digest)) {
                    Some(&j) => jobs[j].findings.push(i),
                    None => {
                        index.insert((v, digest), jobs.len());
                        jobs.push(Job {
                            validator: v,
                            credential,
                            findings: vec![i],
                        });
                    }
                }
            }
        }
    }
    stats.checked = jobs.len();
    let results = check_all(&jobs, validators, concurrency);
    for (job, result) in jobs.iter().zip(results) {
        for &i in &job.findings {
            if let Some(f) = findings.get_mut(i) {
                f.validation = Some(result.clone());
            }
        }
    }
    stats
}

/// Runs every job's check on at most `concurrency` threads; the results in
/// job order.
fn check_all(jobs: &[Job], validators: &[&dyn Validator], concurrency: usize) -> Vec<Validation> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Validation>>> = Mutex::new(vec![None; jobs.len()]);
    let workers = concurrency.max(1).min(jobs.len());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(j) else { break };
                let v = validators[job.validator];
                let verdict = v.check(&job.credential);
                if let Ok(mut r) = results.lock() {
                    r[j] = Some(verdict);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .zip(jobs)
        .map(|(r, job)| {
            r.unwrap_or_else(|| {
                Validation::unknown(validators[job.validator].name(), "the check did not finish")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Condvar;

    fn finding(rule: &str, secret: &str) -> Finding {
        Finding {
            rule_id: rule.into(),
            description: String::new(),
            path: "a.txt".into(),
            line: 1,
            column: 1,
            end_line: 1,
            end_column: 1,
            start: 0,
            end: secret.len(),
            secret: Zeroizing::new(secret.into()),
            entropy: 0.0,
            secret_type: "token".into(),
            vendor: None,
            commit: None,
            decoded: None,
            also: Vec::new(),
            path_class: None,
            checksum: None,
            validation: None,
        }
    }

    /// Checks `t-*` secrets; counts calls per credential and the most
    /// checks in flight. Each check waits until `limit` are in flight (or
    /// every job has started), so the peak is reached whatever the
    /// scheduling, and exceeding it would be seen.
    struct Counting {
        limit: usize,
        total: usize,
        state: Mutex<(usize, usize, usize, HashMap<String, usize>)>,
        cv: Condvar,
    }

    impl Validator for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        fn claim(&self, f: &Finding) -> Option<Claim> {
            if f.secret.starts_with("t-") {
                Some(Claim::Check(f.secret.clone()))
            } else if f.secret.starts_with("d-") {
                Some(Claim::Decided(Validation::revoked("counting", "decided")))
            } else {
                None
            }
        }
        fn check(&self, credential: &str) -> Validation {
            let mut st = self.state.lock().unwrap();
            // (in flight, peak, started, calls)
            st.0 += 1;
            st.2 += 1;
            st.1 = st.1.max(st.0);
            *st.3.entry(credential.to_string()).or_default() += 1;
            self.cv.notify_all();
            while st.0 < self.limit && st.2 < self.total {
                st = self.cv.wait(st).unwrap();
            }
            st.0 -= 1;
            self.cv.notify_all();
            Validation::live("counting", "ok")
        }
    }

    #[test]
    fn each_distinct_credential_once_and_never_more_than_the_limit_at_once() {
        let mut findings: Vec<Finding> = (0..12)
            .map(|i| finding("r", &format!("t-{}", i % 6)))
            .collect();
        findings.push(finding("r", "d-x"));
        findings.push(finding("other", "plain"));
        let v = Counting {
            limit: 2,
            total: 6,
            state: Mutex::new((0, 0, 0, HashMap::new())),
            cv: Condvar::new(),
        };
        let stats = run(&mut findings, &[&v], 2);
        assert_eq!(
            stats,
            Stats {
                checked: 6,
                decided: 1,
                unclaimed: 1
            }
        );
        let st = v.state.lock().unwrap();
        assert_eq!(st.1, 2, "peak in flight");
        assert_eq!(st.3.len(), 6);
        assert!(st.3.values().all(|&n| n == 1), "{:?}", st.3);
        let statuses: Vec<_> = findings
            .iter()
            .map(|f| f.validation.as_ref().map(|v| v.status))
            .collect();
        assert!(statuses[..12].iter().all(|s| *s == Some(Status::Live)));
        assert_eq!(statuses[12], Some(Status::Revoked));
        assert_eq!(statuses[13], Some(Status::Unknown));
        assert_eq!(
            findings[13].validation.as_ref().map(|v| v.validator),
            Some(NO_VALIDATOR)
        );
    }

    #[test]
    fn no_jobs_and_zero_concurrency_are_fine() {
        let v = Counting {
            limit: 1,
            total: 1,
            state: Mutex::new((0, 0, 0, HashMap::new())),
            cv: Condvar::new(),
        };
        let mut none: Vec<Finding> = Vec::new();
        assert_eq!(run(&mut none, &[&v], 0), Stats::default());
        let mut one = vec![finding("r", "t-1")];
        assert_eq!(run(&mut one, &[&v], 0).checked, 1);
    }
}
