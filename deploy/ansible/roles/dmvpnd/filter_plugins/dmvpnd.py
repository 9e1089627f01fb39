"""Filters of the dmvpnd role."""

from collections.abc import Mapping

from ansible.parsing.yaml.objects import AnsibleVaultEncryptedUnicode


def dmvpnd_plain(value):
    """Return value with every inline-vaulted string decrypted.

    to_nice_yaml would otherwise render such a value as its `!vault`
    ciphertext, which dmvpnd would take for the secret itself.
    """
    if isinstance(value, AnsibleVaultEncryptedUnicode):
        return str(value)
    if isinstance(value, Mapping):
        return {dmvpnd_plain(k): dmvpnd_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [dmvpnd_plain(v) for v in value]
    return value


class FilterModule:
    """dmvpnd role filters."""

    def filters(self):
        return {"dmvpnd_plain": dmvpnd_plain}
