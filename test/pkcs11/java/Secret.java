// MACs and encrypts with secret keys of a PKCS#11 token through Java's SunPKCS11 provider and its
// "PKCS11" KeyStore, as a JCE application does: the keys are taken by their aliases (their labels),
// the MAC is HmacSHA256 (CKM_SHA256_HMAC) and the cipher AES/ECB/NoPadding (CKM_AES_ECB, the AES
// cipher p11-kit 0.24's client carries). Used by test/pkcs11/java_sunpkcs11.test.ts.
//
// java Secret.java <config> <pin> <hmac alias> <aes alias> <data file>
// prints "hmac <hex>" and "ecb <hex>" of the data

import java.nio.file.Files;
import java.nio.file.Path;
import java.security.Key;
import java.security.KeyStore;
import java.security.Provider;
import java.security.Security;
import java.util.HexFormat;
import javax.crypto.Cipher;
import javax.crypto.Mac;
import javax.crypto.SecretKey;

public class Secret {
    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: Secret <config> <pin> <hmac alias> <aes alias> <data file>");
            System.exit(2);
        }
        Provider provider = Security.getProvider("SunPKCS11").configure(args[0]);
        Security.addProvider(provider);
        KeyStore store = KeyStore.getInstance("PKCS11", provider);
        store.load(null, args[1].toCharArray());
        byte[] data = Files.readAllBytes(Path.of(args[4]));
        Key hmacKey = store.getKey(args[2], null);
        Key aesKey = store.getKey(args[3], null);
        if (!(hmacKey instanceof SecretKey) || !(aesKey instanceof SecretKey)) throw new IllegalStateException("no secret keys under those aliases");
        Mac mac = Mac.getInstance("HmacSHA256", provider);
        mac.init(hmacKey);
        System.out.println("hmac " + HexFormat.of().formatHex(mac.doFinal(data)));
        Cipher cipher = Cipher.getInstance("AES/ECB/NoPadding", provider);
        cipher.init(Cipher.ENCRYPT_MODE, aesKey);
        System.out.println("ecb " + HexFormat.of().formatHex(cipher.doFinal(data)));
    }
}
