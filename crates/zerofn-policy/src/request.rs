//! What is asked of the PDP: who (a function), what (a capability on a resource), in which
//! context (the invocation, its callers, time, risk).

/// A function, by app and name. Its Cedar id is `Function::"<app>/<name>"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionRef {
    pub app: String,
    pub name: String,
}

impl FunctionRef {
    pub fn new(app: impl Into<String>, name: impl Into<String>) -> Self {
        FunctionRef {
            app: app.into(),
            name: name.into(),
        }
    }

    /// `app/name`, the Cedar entity id.
    pub fn cedar_id(&self) -> String {
        format!("{}/{}", self.app, self.name)
    }
}

impl std::fmt::Display for FunctionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.app, self.name)
    }
}

/// A normalised outbound destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub scheme: String,
    /// Canonical ([`zerofn_manifest::canonical_host`]).
    pub host: String,
    pub port: u16,
    /// The path without the query, dot segments resolved.
    pub path: String,
    pub method: String,
    /// The address to be connected to: the host's own for an IP literal, a resolved one
    /// otherwise; `None` before the name is resolved.
    pub address: Option<std::net::IpAddr>,
    /// Whether `address` is not publicly routable (loopback, private, link-local, ...).
    pub private: bool,
}

impl Destination {
    /// A destination not resolved yet.
    pub fn new(scheme: &str, host: &str, port: u16, path: &str, method: &str) -> Self {
        Destination {
            scheme: scheme.to_string(),
            host: host.to_string(),
            port,
            path: path.to_string(),
            method: method.to_string(),
            address: None,
            private: false,
        }
    }
}

/// A capability use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// Call another function of the same app.
    Invoke { callee: String },
    /// Reach a destination over HTTP.
    Egress(Destination),
    /// Read a secret of the app.
    SecretRead { name: String },
    /// Read from a bucket of the app.
    KvRead { bucket: String },
    /// Write to a bucket of the app.
    KvWrite { bucket: String },
}

impl Capability {
    /// A capability as people write it: an action and its resource (a function, secret or
    /// bucket name, or for `egress` a URL, with `method`).
    pub fn parse(action: &str, resource: &str, method: &str) -> Result<Self, String> {
        match action {
            "invoke" => Ok(Capability::Invoke {
                callee: resource.to_string(),
            }),
            "secret.read" => Ok(Capability::SecretRead {
                name: resource.to_string(),
            }),
            "kv.read" => Ok(Capability::KvRead {
                bucket: resource.to_string(),
            }),
            "kv.write" => Ok(Capability::KvWrite {
                bucket: resource.to_string(),
            }),
            "egress" => {
                let url = url::Url::parse(resource)
                    .map_err(|e| format!("`{resource}` is not a URL: {e}"))?;
                let port = url
                    .port_or_known_default()
                    .ok_or_else(|| format!("`{resource}` has no port"))?;
                let host = url
                    .host()
                    .as_ref()
                    .and_then(zerofn_manifest::canonical_host)
                    .ok_or_else(|| format!("`{resource}` has no valid host"))?;
                // What is decided before any lookup; an address's class is the platform's to
                // judge when it connects.
                Ok(Capability::Egress(Destination::new(
                    url.scheme(),
                    &host,
                    port,
                    url.path(),
                    &method.to_ascii_uppercase(),
                )))
            }
            other => Err(format!(
                "unknown action `{other}`: use invoke, egress, secret.read, kv.read or kv.write"
            )),
        }
    }

    /// The Cedar action id.
    pub fn action(&self) -> &'static str {
        match self {
            Capability::Invoke { .. } => "invoke",
            Capability::Egress(_) => "egress",
            Capability::SecretRead { .. } => "secret.read",
            Capability::KvRead { .. } => "kv.read",
            Capability::KvWrite { .. } => "kv.write",
        }
    }

    /// The resource's Cedar type and id, for a principal of `app`.
    pub fn resource(&self, app: &str) -> (&'static str, String) {
        match self {
            Capability::Invoke { callee } => ("Function", format!("{app}/{callee}")),
            Capability::Egress(destination) => ("Host", destination.host.clone()),
            Capability::SecretRead { name } => ("Secret", format!("{app}/{name}")),
            Capability::KvRead { bucket } | Capability::KvWrite { bucket } => {
                ("Bucket", format!("{app}/{bucket}"))
            }
        }
    }
}

/// The invocation a capability is used for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    pub invocation_id: String,
    /// SPIFFE IDs of the callers, outermost first.
    pub caller_chain: Vec<String>,
    /// Seconds since the Unix epoch.
    pub time: i64,
    /// 0 to 100.
    pub risk: i64,
}

/// One question for the PDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    pub principal: FunctionRef,
    pub capability: Capability,
    pub context: RequestContext,
}
