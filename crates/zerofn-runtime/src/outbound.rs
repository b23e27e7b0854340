//! Where a sandbox's outbound HTTP requests go. The runtime knows nothing of functions, routes
//! or grants: the platform hands each invocation an [`Outbound`] that may take a request (for
//! example a call to another function, or an egress it allows) and answers it; whatever it
//! does not take is refused before any connection exists, and recorded.

use std::future::Future;
use std::pin::Pin;
/// The body of an outbound request or its response (the same type as [`crate::ResponseBody`]).
pub type OutboundBody = wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::WasiBody;

/// The answer to an outbound request the platform took.
pub type OutboundFuture = Pin<
    Box<dyn Future<Output = Result<http::Response<WasiBody>, wasmtime_wasi_http::Error>> + Send>,
>;

/// What the platform did with an outbound request.
pub enum Routed {
    /// It took the request; the future yields the response the guest receives.
    Answered(OutboundFuture),
    /// Not the platform's to answer: it is refused before any connection exists.
    Declined(Box<http::Request<WasiBody>>),
}

/// The guest's timeouts for one outbound request (`wasi:http/types.request-options`).
pub use wasmtime_wasi_http::RequestOptions;

/// The platform's side of one invocation's outbound requests.
pub trait Outbound: Send + Sync + 'static {
    /// Takes `request` and answers it, or hands it back to be refused. `options` are the
    /// timeouts the guest asked for, if any.
    fn route(&self, request: http::Request<WasiBody>, options: Option<RequestOptions>) -> Routed;
}
