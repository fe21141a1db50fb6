package voxgate.client;

import io.grpc.ClientInterceptor;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.MetadataUtils;
import io.netty.handler.ssl.SslContext;
import java.io.IOException;
import java.nio.file.Path;

/**
 * How to reach a voxgate that authenticates callers (docs/security.md): the caller key, sent as
 * {@code authorization: Bearer <token>} on every call, and TLS. {@link #PLAINTEXT} (no key, no
 * TLS) is for loopback.
 *
 * <pre>{@code
 * Security security = Security.PLAINTEXT.withToken(System.getenv("VOXGATE_TOKEN")).withCaFile(Path.of("ca.crt"));
 * try (VoxgateClient client = new VoxgateClient("voxgate.internal:50051", security)) { ... }
 * }</pre>
 *
 * @param token the caller key, or null for none; sent over plaintext too (to a loopback voxgate
 *     or a TLS-terminating proxy)
 * @param tls TLS with the JDK's trusted roots, unless {@code caFile} is set
 * @param caFile PEM CA certificates of the server certificate, or null (implies TLS)
 * @param certFile PEM client certificate (and its chain) for mutual TLS, or null (implies TLS)
 * @param keyFile PEM private key of {@code certFile}: PKCS#8 ("PRIVATE KEY"), PKCS#1 ("RSA
 *     PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY"), unencrypted
 */
public record Security(String token, boolean tls, Path caFile, Path certFile, Path keyFile) {
  /** No caller key, no TLS. */
  public static final Security PLAINTEXT = new Security(null, false, null, null, null);

  /** @throws IllegalArgumentException a client certificate without its key, or a key without it */
  public Security {
    if (token != null && token.isEmpty()) {
      token = null;
    }
    if ((certFile == null) != (keyFile == null)) {
      throw new IllegalArgumentException("a client certificate needs both a certificate and a key file");
    }
  }

  public Security withToken(String token) {
    return new Security(token, tls, caFile, certFile, keyFile);
  }

  public Security withTls(boolean tls) {
    return new Security(token, tls, caFile, certFile, keyFile);
  }

  public Security withCaFile(Path caFile) {
    return new Security(token, tls, caFile, certFile, keyFile);
  }

  public Security withClientCertificate(Path certFile, Path keyFile) {
    return new Security(token, tls, caFile, certFile, keyFile);
  }

  /** Whether the channel uses TLS. */
  public boolean secure() {
    return tls || caFile != null || certFile != null;
  }

  // The key never shows in a log line or an exception that prints this record.
  @Override
  public String toString() {
    return "Security[token=" + (token == null ? "none" : "(set)") + ", tls=" + secure() + ", caFile=" + caFile
        + ", certFile=" + certFile + ", keyFile=" + keyFile + "]";
  }

  /**
   * A channel builder for {@code target}: Netty with TLS when {@link #secure}, plaintext
   * otherwise, the caller key attached to every call.
   *
   * @throws IOException a file is missing or holds no usable PEM certificate or key
   */
  ManagedChannelBuilder<?> channelBuilder(String target) throws IOException {
    ManagedChannelBuilder<?> builder;
    if (secure()) {
      builder = NettyChannelBuilder.forTarget(target).sslContext(sslContext());
    } else {
      builder = ManagedChannelBuilder.forTarget(target).usePlaintext();
    }
    if (token != null) {
      builder.intercept(bearer(token));
    }
    return builder;
  }

  private SslContext sslContext() throws IOException {
    return NettyTls.clientContext(caFile, certFile, keyFile);
  }

  private static ClientInterceptor bearer(String token) {
    Metadata headers = new Metadata();
    headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + token);
    return MetadataUtils.newAttachHeadersInterceptor(headers);
  }
}
