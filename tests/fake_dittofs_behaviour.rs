mod fake_dittofs;

use fake_dittofs::FakeDittoFs;

#[test]
fn starts() {
    let fake = FakeDittoFs::start();
    let dfs = fake.add_server("d-api.team.svc", "initial-pw-123");
    assert_eq!(dfs.adapters().len(), 2);
}
