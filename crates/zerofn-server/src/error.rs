//! Why a deploy or rollback was refused, with a stable code for each rule.

/// A refused deploy or rollback.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// Admission refused the bundle: every finding, errors first, each with its rule and the
    /// manifest field it concerns.
    #[error("admission refused the deploy:\n{}", zerofn_admission::render_text(.0))]
    Refused(Vec<zerofn_admission::Finding>),
    /// A stored manifest no longer passes (located diagnostics).
    #[error("the manifest was refused:\n{}", .0.render(false))]
    Manifest(zerofn_manifest::Diagnostics),
    /// A function's component is not in the bundle.
    #[error("no component was sent for function `{0}`; run `zerofn build` and deploy again")]
    MissingComponent(String),
    /// The bundle carries a component for a function the manifest does not declare.
    #[error("a component was sent for `{0}`, which the manifest does not declare")]
    UnexpectedComponent(String),
    /// A component does not compile or link.
    #[error("function `{function}`: {error}")]
    Component { function: String, error: String },
    /// Another app already serves the route.
    #[error(
        "function `{function}` wants route {route}, which app `{other_app}` already serves with function `{other_function}`; choose another route or remove it from `{other_app}`"
    )]
    RouteConflict {
        function: String,
        route: String,
        other_app: String,
        other_function: String,
    },
    /// A function's signature, provenance or dependencies do not admit it.
    #[error("function `{function}` refused ({rule}): {reason}")]
    Admission {
        function: String,
        rule: &'static str,
        reason: String,
    },
    /// The grants do not compile into valid policies alongside the guardrails.
    #[error("the grants cannot be turned into policies: {0}")]
    Policy(String),
    /// Rollback was asked for but the app has only ever had one version.
    #[error("app `{0}` has no earlier version to roll back to")]
    NothingToRollBackTo(String),
    /// The store failed or refused (unknown app or version, integrity failure, disk error).
    #[error(transparent)]
    Store(#[from] zerofn_store::StoreError),
    /// An internal task failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl DeployError {
    /// The stable code of the rule that refused the deploy (for an admission refusal, the
    /// first error's rule).
    pub fn code(&self) -> &str {
        match self {
            Self::Refused(findings) => findings
                .iter()
                .find(|f| f.is_error())
                .map_or("admission-refused", |f| f.rule.as_str()),
            Self::Manifest(_) => "manifest-invalid",
            Self::MissingComponent(_) => "missing-component",
            Self::UnexpectedComponent(_) => "unexpected-component",
            Self::Component { .. } => "component-invalid",
            Self::RouteConflict { .. } => "route-conflict",
            Self::Admission { rule, .. } => rule,
            Self::NothingToRollBackTo(_) => "nothing-to-roll-back-to",
            Self::Policy(_) => "policy-invalid",
            Self::Store(zerofn_store::StoreError::UnknownApp(_)) => "unknown-app",
            Self::Store(zerofn_store::StoreError::UnknownVersion { .. }) => "unknown-version",
            Self::Store(zerofn_store::StoreError::Integrity { .. }) => "integrity-failure",
            Self::Store(_) => "store-error",
            Self::Internal(_) => "internal-error",
        }
    }

    /// The HTTP status the control plane answers with.
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::Store(zerofn_store::StoreError::UnknownApp(_))
            | Self::Store(zerofn_store::StoreError::UnknownVersion { .. }) => {
                http::StatusCode::NOT_FOUND
            }
            Self::Store(_) | Self::Internal(_) => http::StatusCode::INTERNAL_SERVER_ERROR,
            Self::Admission { .. } | Self::Refused(_) => http::StatusCode::FORBIDDEN,
            Self::RouteConflict { .. } | Self::NothingToRollBackTo(_) => http::StatusCode::CONFLICT,
            _ => http::StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    /// The refusal for machines: the code, the message and, for admission refusals, every
    /// finding (for stored manifests, every diagnostic) with file, line, column and field.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::json!({
            "code": self.code(),
            "message": self.to_string(),
        });
        if let serde_json::Value::Object(map) = &mut value {
            match self {
                Self::Manifest(diagnostics) => {
                    map.insert("diagnostics".into(), diagnostics.to_json());
                }
                Self::Refused(findings) => {
                    map.insert(
                        "findings".into(),
                        serde_json::to_value(findings).unwrap_or_default(),
                    );
                }
                _ => {}
            }
        }
        value
    }
}
