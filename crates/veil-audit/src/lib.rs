//! veil-audit: audits of what a deployment really delivers.
//!
//! - [`net`]: `veil net audit`. A deployment of the runtime is started for real (a
//!   coordinator and a fleet of processes over mutual TLS) with every helper recording what it
//!   observes ([`veil_net::views`]); auxiliary images (training split) and victims (test
//!   split) are sent through it; each helper's recorded views are attacked ([`views`]) and
//!   scored against tau.
//! - [`helper`]: one helper's audit (every reading attacked, the strongest kept) and the
//!   confirm pass that attacks helpers near tau again at full strength.
//! - [`report`]: the audit's report and its text table.
//! - [`views`]: a device's recorded views turned into attack features: the maps it observed
//!   stacked at a common size (conv decoder), and all its values as one vector (flat decoder);
//!   the stronger of the two attacks is its leakage.

#![forbid(unsafe_code)]

pub mod helper;
pub mod net;
pub mod report;
pub mod views;

/// Errors of an audit.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The runtime failed (starting the fleet, a request, a view log).
    #[error(transparent)]
    Net(#[from] veil_net::NetError),
    /// An attack on a helper's views failed.
    #[error("attacking {helper}'s views")]
    Attack {
        /// The helper.
        helper: String,
        /// Why.
        #[source]
        source: veil_attack::AttackError,
    },
    /// The model failed (single-process logits).
    #[error(transparent)]
    Model(#[from] veil_model::ModelError),
    /// A setting out of its range, or a run that cannot be audited (a request retried).
    #[error("{0}")]
    Invalid(String),
    /// A file of the audit could not be written.
    #[error("writing {path}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
