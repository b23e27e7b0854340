//! `wasi:config/store` through the runtime alone: the hostile guest reads a value from a
//! `ConfigSource`, and what it read never leaves the invocation in its error details.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use http_body_util::Empty;
use std::sync::Arc;
use zerofn_runtime::{
    ConfigFuture, ConfigRefusal, ConfigSource, ConfigValue, FailureKind, Invocation,
    InvocationLimits, OutputBudget, Runtime, RuntimeConfig,
};

const VALUE: &str = "runtime-secret-5c1d";

/// Gives `VALUE` for `k`, nothing for anything else, and refuses `get-all`.
struct OneValue;

impl ConfigSource for OneValue {
    fn get(&self, name: String) -> ConfigFuture<Option<ConfigValue>> {
        Box::pin(
            async move { Ok((name == "k").then(|| zeroize::Zeroizing::new(VALUE.to_string()))) },
        )
    }

    fn get_all(&self) -> ConfigFuture<Vec<(String, ConfigValue)>> {
        Box::pin(async { Err(ConfigRefusal("no listing".into())) })
    }
}

async fn invoke(
    path: &str,
    config: Option<Arc<dyn ConfigSource>>,
) -> Result<hyper::Response<zerofn_runtime::ResponseBody>, zerofn_runtime::InvocationFailure> {
    let data = tempfile::tempdir().unwrap();
    let store = zerofn_store::Store::open(data.path()).unwrap();
    let audit = zerofn_audit::AuditLog::start(store).unwrap();
    let runtime = Runtime::new(RuntimeConfig::default(), audit).unwrap();
    let component = runtime
        .load(&std::fs::read(zerofn_test_artifacts::HOSTILE).unwrap())
        .unwrap();
    let name: Arc<str> = "hostile".into();
    let invocation = Invocation {
        scope: Arc::new(zerofn_audit::InvocationScope {
            invocation_id: "test".into(),
            app: name.clone(),
            function: name.clone(),
            version_id: "sha256:test".into(),
            identity: "spiffe://zerofn.local/app/hostile/fn/hostile".into(),
            caller: "anonymous".into(),
            trace: zerofn_audit::TraceContext::start(),
        }),
        start_detail: zerofn_audit::Detail::default(),
        limits: InvocationLimits::default(),
        output_budget: OutputBudget::new(&RuntimeConfig::default().output),
        lease: None,
        outbound: None,
        config,
        keyvalue: None,
        stop: None,
    };
    let request = hyper::Request::get(format!("http://localhost{path}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    runtime.invoke(&component, invocation, request).await
}

async fn body(response: hyper::Response<zerofn_runtime::ResponseBody>) -> String {
    use http_body_util::BodyExt as _;
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn values_come_from_the_source_and_stay_out_of_error_details() {
    let source: Arc<dyn ConfigSource> = Arc::new(OneValue);
    let read = invoke("/secret?name=k", Some(source.clone()))
        .await
        .unwrap();
    assert_eq!(body(read).await, format!("{{\"value\":\"{VALUE}\"}}"));
    let missing = invoke("/secret?name=other", Some(source.clone()))
        .await
        .unwrap();
    assert_eq!(body(missing).await, "{\"value\":null}");
    let all = invoke("/secret-all", Some(source.clone())).await.unwrap();
    assert_eq!(body(all).await, "{\"error\":\"upstream: no listing\"}");

    let failure = invoke("/secret-error?name=k", Some(source))
        .await
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::GuestError);
    assert!(failure.detail.contains("[redacted]"), "{}", failure.detail);
    assert!(!failure.detail.contains(VALUE), "{}", failure.detail);

    // Without a source, every read is an error.
    let none = invoke("/secret?name=k", None).await.unwrap();
    assert!(body(none).await.contains("no configuration store"));
}
