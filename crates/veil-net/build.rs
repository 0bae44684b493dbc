//! Generates the tonic client and server of veil's one gRPC service, `veil.Veil/Call`: a unary
//! call whose request and response are veil's own byte frames (`crate::grpc::Frame`, encoded
//! by `crate::wire`), so no `.proto` file or `protoc` is needed.

fn main() {
    let call = tonic_build::manual::Method::builder()
        .name("call")
        .route_name("Call")
        .input_type("crate::grpc::Frame")
        .output_type("crate::grpc::Frame")
        .codec_path("crate::grpc::FrameCodec")
        .build();
    let service = tonic_build::manual::Service::builder()
        .name("Veil")
        .package("veil")
        .method(call)
        .build();
    tonic_build::manual::Builder::new().compile(&[service]);
}
