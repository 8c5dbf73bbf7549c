#include <stdio.h>
#include "greeting.h"

int main(void) {
    printf("%s\n", GREETING);
    return 0;
}
