package voxgate.client;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * PEM certificates and private keys with the JDK alone. Netty's SslContext takes PKCS#8 keys only
 * (without BouncyCastle); Go and Node also read PKCS#1 RSA and SEC 1 EC keys, so those are wrapped
 * into PKCS#8 here (RFC 5208: the key's algorithm identifier around the same bytes).
 */
final class PemFiles {
  private static final Pattern BLOCK =
      Pattern.compile("-----BEGIN ([A-Z0-9 ]+)-----([A-Za-z0-9+/=\\s]*?)-----END \\1-----");
  // DER of the algorithm OIDs: rsaEncryption (1.2.840.113549.1.1.1) and id-ecPublicKey (1.2.840.10045.2.1).
  private static final byte[] RSA_ENCRYPTION = {0x06, 0x09, 0x2a, (byte) 0x86, 0x48, (byte) 0x86, (byte) 0xf7, 0x0d,
      0x01, 0x01, 0x01};
  private static final byte[] EC_PUBLIC_KEY = {0x06, 0x07, 0x2a, (byte) 0x86, 0x48, (byte) 0xce, 0x3d, 0x02, 0x01};
  private static final byte[] DER_NULL = {0x05, 0x00};
  private static final byte[] VERSION_0 = {0x02, 0x01, 0x00};

  private PemFiles() {}

  /** Every CERTIFICATE block of the file, in order. */
  static List<X509Certificate> certificates(Path path) throws IOException {
    List<X509Certificate> certificates = new ArrayList<>();
    try {
      CertificateFactory factory = CertificateFactory.getInstance("X.509");
      Matcher block = BLOCK.matcher(read(path));
      while (block.find()) {
        if (block.group(1).equals("CERTIFICATE")) {
          byte[] der = decode(path, block.group(2));
          certificates.add((X509Certificate) factory.generateCertificate(new ByteArrayInputStream(der)));
        }
      }
    } catch (CertificateException e) {
      throw new IOException(path + ": not a valid certificate (" + e.getMessage() + ")", e);
    }
    if (certificates.isEmpty()) {
      throw new IOException(path + ": no PEM certificate in it");
    }
    return certificates;
  }

  /** The file's first private key: PKCS#8, PKCS#1 (RSA) or SEC 1 (EC), unencrypted. */
  static PrivateKey privateKey(Path path) throws IOException {
    Matcher block = BLOCK.matcher(read(path));
    while (block.find()) {
      String label = block.group(1);
      switch (label) {
        case "PRIVATE KEY":
          return pkcs8(path, decode(path, block.group(2)), "RSA", "EC", "Ed25519", "Ed448", "DSA");
        case "RSA PRIVATE KEY":
          return pkcs8(path, wrap(sequence(RSA_ENCRYPTION, DER_NULL), decode(path, block.group(2))), "RSA");
        case "EC PRIVATE KEY":
          byte[] sec1 = decode(path, block.group(2));
          return pkcs8(path, wrap(sequence(EC_PUBLIC_KEY, curve(path, sec1)), sec1), "EC");
        case "ENCRYPTED PRIVATE KEY":
          throw new IOException(path + ": an encrypted key; decrypt it first (openssl pkey -in KEY -out KEY.plain)");
        default:
          // e.g. "EC PARAMETERS" before the key, as openssl ecparam -genkey writes it
      }
    }
    throw new IOException(path + ": no PEM private key in it");
  }

  private static String read(Path path) throws IOException {
    try {
      return Files.readString(path, StandardCharsets.US_ASCII);
    } catch (NoSuchFileException e) {
      throw new IOException(path + ": No such file or directory", e);
    } catch (AccessDeniedException e) {
      throw new IOException(path + ": Permission denied", e);
    } catch (java.nio.charset.MalformedInputException e) {
      throw new IOException(path + ": not a PEM file", e);
    }
  }

  private static byte[] decode(Path path, String base64) throws IOException {
    try {
      return Base64.getMimeDecoder().decode(base64.strip());
    } catch (IllegalArgumentException e) {
      throw new IOException(path + ": bad base64 in a PEM block", e);
    }
  }

  private static PrivateKey pkcs8(Path path, byte[] der, String... algorithms) throws IOException {
    for (String algorithm : algorithms) {
      try {
        return KeyFactory.getInstance(algorithm).generatePrivate(new PKCS8EncodedKeySpec(der));
      } catch (GeneralSecurityException e) {
        // not this algorithm (or not one this JDK has): try the next
      }
    }
    throw new IOException(path + ": not a valid " + String.join("/", algorithms) + " private key");
  }

  /** The named curve's OID (its whole DER) from a SEC 1 ECPrivateKey's [0] parameters. */
  private static byte[] curve(Path path, byte[] sec1) throws IOException {
    try {
      return namedCurve(sec1);
    } catch (IOException e) {
      throw new IOException(path + ": " + e.getMessage(), e);
    }
  }

  private static byte[] namedCurve(byte[] sec1) throws IOException {
    Der outer = new Der(sec1, 0);
    if (outer.tag != 0x30) {
      throw new IOException("not a SEC 1 EC private key");
    }
    int at = outer.contentStart;
    while (at < outer.end) {
      Der element = new Der(sec1, at);
      if (element.tag == (byte) 0xa0) {
        Der oid = new Der(sec1, element.contentStart);
        if (oid.tag == 0x06) {
          return java.util.Arrays.copyOfRange(sec1, element.contentStart, oid.end);
        }
      }
      at = element.end;
    }
    throw new IOException("the EC key names no curve; convert it to PKCS#8 (openssl pkcs8 -topk8 -nocrypt)");
  }

  /** PrivateKeyInfo: version 0, the algorithm identifier, the key bytes in an OCTET STRING. */
  private static byte[] wrap(byte[] algorithm, byte[] key) {
    return sequence(VERSION_0, algorithm, tlv(0x04, key));
  }

  private static byte[] sequence(byte[]... parts) {
    ByteArrayOutputStream content = new ByteArrayOutputStream();
    for (byte[] part : parts) {
      content.writeBytes(part);
    }
    return tlv(0x30, content.toByteArray());
  }

  private static byte[] tlv(int tag, byte[] content) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.write(tag);
    int length = content.length;
    if (length < 0x80) {
      out.write(length);
    } else {
      int bytes = (32 - Integer.numberOfLeadingZeros(length) + 7) / 8;
      out.write(0x80 | bytes);
      for (int i = bytes - 1; i >= 0; i--) {
        out.write(length >>> (8 * i));
      }
    }
    out.writeBytes(content);
    return out.toByteArray();
  }

  /** One DER element's tag and bounds (definite lengths, as DER has). */
  private static final class Der {
    final byte tag;
    final int contentStart;
    final int end;

    Der(byte[] der, int at) throws IOException {
      if (at + 2 > der.length) {
        throw new IOException("truncated DER");
      }
      tag = der[at];
      int length = der[at + 1] & 0xff;
      int start = at + 2;
      if (length >= 0x80) {
        int bytes = length & 0x7f;
        if (bytes == 0 || bytes > 3 || start + bytes > der.length) {
          throw new IOException("bad DER length");
        }
        length = 0;
        for (int i = 0; i < bytes; i++) {
          length = (length << 8) | (der[start + i] & 0xff);
        }
        start += bytes;
      }
      if (start + length > der.length) {
        throw new IOException("truncated DER");
      }
      contentStart = start;
      end = start + length;
    }
  }
}
