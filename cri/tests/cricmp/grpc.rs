//! A plain runtime.v1 gRPC client (tonic, over the runtime's unix socket) for the few
//! calls crictl v1.26 does not make: ReopenContainerLog, ContainerStats.

use std::path::Path;

use capsa_cri::proto::runtime_service_client::RuntimeServiceClient;
use capsa_cri::proto::{ContainerStats, ContainerStatsRequest, ReopenContainerLogRequest};
use tonic::transport::Channel;

pub struct Grpc {
    rt: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
}

impl Grpc {
    pub fn connect(sock: &Path) -> Grpc {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let sock = sock.to_path_buf();
        let channel = rt
            .block_on(async move {
                tonic::transport::Endpoint::try_from("http://[::]:50051")
                    .unwrap()
                    .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                        let sock = sock.clone();
                        async move {
                            let s = tokio::net::UnixStream::connect(sock).await?;
                            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                        }
                    }))
                    .await
            })
            .expect("connect to the CRI socket");
        Grpc { rt, client: RuntimeServiceClient::new(channel) }
    }

    pub fn reopen_container_log(&mut self, id: &str) -> Result<(), tonic::Status> {
        let req = ReopenContainerLogRequest { container_id: id.to_owned() };
        self.rt.block_on(self.client.reopen_container_log(req)).map(|_| ())
    }

    pub fn container_stats(&mut self, id: &str) -> Result<Option<ContainerStats>, tonic::Status> {
        let req = ContainerStatsRequest { container_id: id.to_owned() };
        self.rt.block_on(self.client.container_stats(req)).map(|r| r.into_inner().stats)
    }
}
