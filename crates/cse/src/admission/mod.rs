//! Admission: vetting every AE registration against the App-ID Registry and the operator's policy,
//! assigning resources and limits to admitted AEs, and acting on revocations (DESIGN.md §7).

pub mod policy;
