//! Two replicas on one Lease against a real API server (KUBECONFIG): exactly one
//! leads; when it shuts down (and releases), the other takes over.
//! `KUBECONFIG=… cargo test --test leader_cluster -- --ignored`

use std::time::Duration;

use dittofs_operator::leader::{LeaderArgs, leadership};
use kube::Client;
use tokio_util::sync::CancellationToken;

fn args(identity: &str, lease: &str) -> LeaderArgs {
    LeaderArgs {
        leader_elect: true,
        lease_name: lease.into(),
        lease_namespace: "default".into(),
        identity: Some(identity.into()),
        lease_duration: 4,
        lease_grace: 1,
    }
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn one_leader_and_a_prompt_handover() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::infer().await.expect("KUBECONFIG");
    let client = Client::try_from(config.clone()).expect("client");
    let lease_client = |a: &LeaderArgs| {
        dittofs_operator::leader::lease_client(config.clone(), a).expect("lease client")
    };
    let lease = format!("dittofs-leader-test-{}", std::process::id());
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    let a = leadership(
        lease_client(&args("replica-a", &lease)),
        &args("replica-a", &lease),
        stop_a.clone(),
    )
    .await
    .expect("a");
    let b = leadership(
        lease_client(&args("replica-b", &lease)),
        &args("replica-b", &lease),
        stop_b.clone(),
    )
    .await
    .expect("b");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (la, lb) = (*a.borrow(), *b.borrow());
        assert!(!(la && lb), "two leaders at once");
        if la || lb {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nobody took the lease"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (leader_stop, follower) = if *a.borrow() {
        (stop_a.clone(), b.clone())
    } else {
        (stop_b.clone(), a.clone())
    };
    leader_stop.cancel();
    let mut follower = follower;
    tokio::time::timeout(Duration::from_secs(20), follower.wait_for(|l| *l))
        .await
        .expect("the other replica takes over")
        .expect("channel open");
    stop_a.cancel();
    stop_b.cancel();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(client, "default");
    let _ = leases.delete(&lease, &Default::default()).await;
}
