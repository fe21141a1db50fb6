package voxgate.client;

import io.netty.handler.codec.http2.Http2SecurityUtil;
import io.netty.handler.ssl.JdkApplicationProtocolNegotiator;
import io.netty.handler.ssl.JdkSslClientContext;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SupportedCipherSuiteFilter;
import java.io.IOException;
import java.lang.reflect.Constructor;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.util.List;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.TrustManagerFactory;

/**
 * A Netty client SslContext that offers HTTP/2 by ALPN, on the JDK's TLS alone.
 *
 * <p>grpc-netty's GrpcSslContexts asks Netty for ALPN, but Debian's netty 4.1.48 dropped the JDK
 * ALPN negotiator ("JDK provider does not support ALPN protocol") and ships no netty-tcnative.
 * The JDK (9+) does ALPN itself, and Netty still has the engine that drives it (Java9SslEngine,
 * package-private): this negotiator hands engines to it. grpc-netty then finds "h2" negotiated, as
 * it requires.
 */
final class NettyTls {
  private static final String H2 = "h2";
  private static final char[] NO_PASSWORD = new char[0];

  private NettyTls() {}

  /** Trust {@code caFile}'s certificates (the JDK's roots if null); present the client certificate if given. */
  @SuppressWarnings("deprecation") // JdkSslClientContext's constructor is the one that takes a negotiator
  static SslContext clientContext(Path caFile, Path certFile, Path keyFile) throws IOException {
    try {
      TrustManagerFactory trust = null;
      if (caFile != null) {
        KeyStore roots = emptyKeyStore();
        int index = 0;
        for (X509Certificate certificate : PemFiles.certificates(caFile)) {
          roots.setCertificateEntry("ca-" + index++, certificate);
        }
        trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        trust.init(roots);
      }
      KeyManagerFactory keys = null;
      if (certFile != null) {
        List<X509Certificate> chain = PemFiles.certificates(certFile);
        PrivateKey key = PemFiles.privateKey(keyFile);
        KeyStore store = emptyKeyStore();
        store.setKeyEntry("client", key, NO_PASSWORD, chain.toArray(new X509Certificate[0]));
        keys = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        keys.init(store, NO_PASSWORD);
      }
      return new JdkSslClientContext(null, trust, null, null, null, keys, Http2SecurityUtil.CIPHERS,
          SupportedCipherSuiteFilter.INSTANCE, new H2Negotiator(), 0, 0);
    } catch (GeneralSecurityException e) {
      throw new IOException("TLS setup failed: " + e.getMessage(), e);
    }
  }

  private static KeyStore emptyKeyStore() throws GeneralSecurityException, IOException {
    KeyStore store = KeyStore.getInstance(KeyStore.getDefaultType());
    store.load(null, null);
    return store;
  }

  /** Offers "h2" alone; the engines are Netty's Java9SslEngine, which sets it on the JDK engine. */
  @SuppressWarnings("deprecation") // JdkApplicationProtocolNegotiator: deprecated, still what JdkSslContext takes
  private static final class H2Negotiator implements JdkApplicationProtocolNegotiator {
    private static final Constructor<?> JAVA9_ENGINE;

    static {
      try {
        Constructor<?> constructor = Class.forName("io.netty.handler.ssl.Java9SslEngine")
            .getDeclaredConstructor(SSLEngine.class, JdkApplicationProtocolNegotiator.class, boolean.class);
        constructor.setAccessible(true);
        JAVA9_ENGINE = constructor;
      } catch (ReflectiveOperationException e) {
        throw new ExceptionInInitializerError(e);
      }
    }

    @Override
    public List<String> protocols() {
      return List.of(H2);
    }

    @Override
    public SslEngineWrapperFactory wrapperFactory() {
      return (engine, negotiator, isServer) -> {
        try {
          return (SSLEngine) JAVA9_ENGINE.newInstance(engine, negotiator, isServer);
        } catch (ReflectiveOperationException e) {
          throw new IllegalStateException("netty's Java9SslEngine: " + e, e);
        }
      };
    }

    @Override
    public ProtocolSelectorFactory protocolSelectorFactory() {
      return (engine, supported) -> { // a server's side: never asked of a client context
        throw new UnsupportedOperationException("client only");
      };
    }

    @Override
    public ProtocolSelectionListenerFactory protocolListenerFactory() {
      // grpc-netty checks the negotiated protocol itself after the handshake ("Failed ALPN negotiation").
      return (engine, protocols) -> new ProtocolSelectionListener() {
        @Override
        public void unsupported() {}

        @Override
        public void selected(String protocol) {}
      };
    }
  }
}
