/** A response body as JSON, typed loosely for assertions. */
export const json = (res: Response): Promise<any> => res.json();
