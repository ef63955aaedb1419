//! The certificate bootstrap against a real API server (KUBECONFIG), in a throwaway namespace
//! with throwaway webhook configurations that can never affect the cluster (url-based,
//! failurePolicy Ignore, matching a resource of a group that does not exist).
//!
//! Run with: `cargo test --test certs_cluster -- --ignored`

use std::panic::AssertUnwindSafe;

use dittofs_operator::certs::bootstrap::{CA_CERT_KEY, CA_KEY_KEY, TLS_CERT_KEY, TLS_KEY_KEY};
use dittofs_operator::certs::issue::{self, LeafProblem};
use dittofs_operator::certs::{CertsArgs, SecretOutcome, bootstrap_once};
use futures::FutureExt;
use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

fn suffix() -> String {
    let mut bytes = [0u8; 4];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    hex::encode(bytes)
}

/// A webhook that can never be called: nothing exists in its group.
fn unused_webhook(name: &str) -> serde_json::Value {
    json!({
        "name": name,
        "clientConfig": {"url": "https://127.0.0.1:1/never"},
        "rules": [{
            "apiGroups": ["certs-test.dittofs.invalid"],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["nothings"],
        }],
        "failurePolicy": "Ignore",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": 1,
    })
}

async fn bundles_validating(
    api: &Api<ValidatingWebhookConfiguration>,
    name: &str,
) -> Vec<Option<Vec<u8>>> {
    let config = api.get(name).await.unwrap();
    config
        .webhooks
        .unwrap_or_default()
        .into_iter()
        .map(|w| w.client_config.ca_bundle.map(|b| b.0))
        .collect()
}

async fn bundles_mutating(
    api: &Api<MutatingWebhookConfiguration>,
    name: &str,
) -> Vec<Option<Vec<u8>>> {
    let config = api.get(name).await.unwrap();
    config
        .webhooks
        .unwrap_or_default()
        .into_iter()
        .map(|w| w.client_config.ca_bundle.map(|b| b.0))
        .collect()
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn bootstrap_converges_and_repairs_against_a_real_api_server() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::try_default().await.expect("KUBECONFIG");
    let id = suffix();
    let namespace = format!("dittofs-certs-test-{id}");
    let validating_name = format!("dittofs-certs-test-{id}-validating");
    let mutating_name = format!("dittofs-certs-test-{id}-mutating");

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());

    let body = AssertUnwindSafe(async {
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap(),
            )
            .await
            .unwrap();
        validating
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": validating_name},
                    "webhooks": [
                        unused_webhook("one.certs-test.dittofs.invalid"),
                        unused_webhook("two.certs-test.dittofs.invalid"),
                    ],
                }))
                .unwrap(),
            )
            .await
            .unwrap();
        mutating
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": mutating_name},
                    "webhooks": [unused_webhook("m.certs-test.dittofs.invalid")],
                }))
                .unwrap(),
            )
            .await
            .unwrap();

        let args = CertsArgs {
            namespace: namespace.clone(),
            secret: "webhook-tls".into(),
            service: "webhook".into(),
            webhook_configs: vec![validating_name.clone(), mutating_name.clone()],
            cluster_domain: "cluster.local".into(),
        };
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);

        // Several runs at once (a Job and operator replicas): one CA, one creator.
        let racers =
            futures::future::join_all((0..4).map(|_| bootstrap_once(client.clone(), &args))).await;
        let racers: Vec<_> = racers.into_iter().map(Result::unwrap).collect();
        let ca = racers[0].ca_bundle.clone();
        assert!(
            racers.iter().all(|o| o.ca_bundle == ca),
            "runs disagree on the CA"
        );
        assert_eq!(
            racers
                .iter()
                .filter(|o| o.secret == SecretOutcome::Created)
                .count(),
            1
        );

        let secret = secrets.get("webhook-tls").await.unwrap();
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
        let data = secret.data.clone().unwrap();
        for key in [CA_CERT_KEY, CA_KEY_KEY, TLS_CERT_KEY, TLS_KEY_KEY] {
            assert!(data.contains_key(key), "{key} missing");
        }
        assert_eq!(data[CA_CERT_KEY].0, ca);
        assert_eq!(
            bundles_validating(&validating, &validating_name).await,
            [Some(ca.clone()), Some(ca.clone())]
        );
        assert_eq!(
            bundles_mutating(&mutating, &mutating_name).await,
            [Some(ca.clone())]
        );

        // A second run changes nothing.
        let again = bootstrap_once(client.clone(), &args).await.unwrap();
        assert_eq!(again.secret, SecretOutcome::Unchanged);
        assert!(again.patched.is_empty());
        assert_eq!(again.ca_bundle, ca);
        let unchanged = secrets.get("webhook-tls").await.unwrap();
        assert_eq!(
            unchanged.metadata.resource_version,
            secret.metadata.resource_version
        );

        // What a helm upgrade does: caBundle gone from the second webhook.
        validating
            .patch(
                &validating_name,
                &PatchParams::default(),
                &Patch::Json::<()>(
                    serde_json::from_value(json!([
                        {"op": "remove", "path": "/webhooks/1/clientConfig/caBundle"}
                    ]))
                    .unwrap(),
                ),
            )
            .await
            .unwrap();
        assert_eq!(
            bundles_validating(&validating, &validating_name).await,
            [Some(ca.clone()), None]
        );
        let repaired = bootstrap_once(client.clone(), &args).await.unwrap();
        assert_eq!(repaired.secret, SecretOutcome::Unchanged);
        assert_eq!(repaired.patched.len(), 1);
        assert_eq!(
            repaired.patched[0].webhook,
            "two.certs-test.dittofs.invalid"
        );
        assert_eq!(
            bundles_validating(&validating, &validating_name).await,
            [Some(ca.clone()), Some(ca.clone())]
        );

        // A leaf for the wrong names is re-issued from the same CA.
        let ca_pem = String::from_utf8(data[CA_CERT_KEY].0.clone()).unwrap();
        let ca_key = String::from_utf8(data[CA_KEY_KEY].0.clone()).unwrap();
        let wrong = issue::issue_leaf(
            &ca_pem,
            &ca_key,
            &issue::service_dns_names("other", &namespace, "cluster.local"),
            Timestamp::now(),
        )
        .unwrap();
        let mut tampered = secrets.get("webhook-tls").await.unwrap();
        let tampered_data = tampered.data.get_or_insert_with(Default::default);
        tampered_data.insert(TLS_CERT_KEY.into(), ByteString(wrong.cert_pem.into_bytes()));
        tampered_data.insert(TLS_KEY_KEY.into(), ByteString(wrong.key_pem.into_bytes()));
        secrets
            .replace("webhook-tls", &PostParams::default(), &tampered)
            .await
            .unwrap();
        let rotated = bootstrap_once(client.clone(), &args).await.unwrap();
        assert!(matches!(
            rotated.secret,
            SecretOutcome::LeafReissued(LeafProblem::SansDiffer { .. })
        ));
        assert_eq!(rotated.ca_bundle, ca, "the CA must survive a leaf re-issue");
        assert!(rotated.patched.is_empty());
        let after = secrets.get("webhook-tls").await.unwrap().data.unwrap();
        assert_eq!(after[CA_CERT_KEY].0, ca);
        let stored = issue::Stored {
            ca_cert: Some(&after[CA_CERT_KEY].0),
            ca_key: Some(&after[CA_KEY_KEY].0),
            cert: Some(&after[TLS_CERT_KEY].0),
            key: Some(&after[TLS_KEY_KEY].0),
        };
        assert_eq!(
            issue::decide(&stored, &args.dns_names(), Timestamp::now()),
            issue::Decision::Keep
        );
    })
    .catch_unwind()
    .await;

    // Clean up whatever was created, whether or not the checks passed.
    let dp = DeleteParams::default();
    let _ = validating.delete(&validating_name, &dp).await;
    let _ = mutating.delete(&mutating_name, &dp).await;
    let _ = namespaces.delete(&namespace, &dp).await;
    if let Err(panic) = body {
        std::panic::resume_unwind(panic);
    }
}
