#!/bin/sh
# A studio's own certificate authority and the gateway's certificate it signs, as a studio's IT issues
# them: the gateway serves gateway.pem, assistants trust ca.pem. Test material for this scenario only.
#   studio_ca.sh DIR IP
set -eu
dir=$1 ip=$2
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=Molecule studio CA" \
  -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=$ip" -keyout gateway.key -out gateway.csr 2>/dev/null
printf 'subjectAltName=IP:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$ip" > gateway.ext
openssl x509 -req -in gateway.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 7 \
  -extfile gateway.ext -out gateway.pem 2>/dev/null
chmod 0600 ca.key gateway.key
