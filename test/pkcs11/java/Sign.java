// Signs a file with a private key of a PKCS#11 token through Java's SunPKCS11 provider and its
// "PKCS11" KeyStore, as a JCE application of AWS CloudHSM does: the provider is configured with a
// SunPKCS11 config file naming the PKCS#11 library, the KeyStore is loaded with the token's PIN, and
// the key is taken by its alias (the label of its certificate). Used by test/pkcs11/java_sunpkcs11.test.ts.
//
// java Sign.java <config> <pin> <alias> <algorithm> <data file> <signature file>

import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.Security;
import java.security.Signature;
import java.security.cert.Certificate;

public class Sign {
    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            System.err.println("usage: Sign <config> <pin> <alias> <algorithm> <data file> <signature file>");
            System.exit(2);
        }
        Provider provider = Security.getProvider("SunPKCS11").configure(args[0]);
        Security.addProvider(provider);
        KeyStore store = KeyStore.getInstance("PKCS11", provider);
        store.load(null, args[1].toCharArray());
        PrivateKey key = (PrivateKey) store.getKey(args[2], null);
        if (key == null) throw new IllegalStateException("no private key under alias " + args[2]);
        Signature signer = Signature.getInstance(args[3], provider);
        signer.initSign(key);
        signer.update(Files.readAllBytes(Path.of(args[4])));
        Files.write(Path.of(args[5]), signer.sign());
        // The certificate the KeyStore pairs with the key, so the caller can check it is the one on the token.
        Certificate cert = store.getCertificate(args[2]);
        System.out.println("signed with " + key.getAlgorithm() + " key " + args[2] + (cert == null ? " without certificate" : " with certificate"));
    }
}
