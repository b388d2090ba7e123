import { Flags } from '@oclif/core';

/** The token store `btrfly token ...` manages (the one `btrfly serve` checks). */
export const tokensFlag = Flags.string({ description: 'token store of the service [default: <config dir>/tokens.json, or $BTRFLY_TOKENS]' });
